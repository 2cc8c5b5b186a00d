"""What NVML (nvidia-ml-py) says about this host's GPUs, without ever raising."""

from __future__ import annotations


def probe() -> tuple[list[dict], str | None]:
    """(GPUs, None) when NVML answers with at least one GPU, else ([], the reason there is none)."""
    try:
        import pynvml
    except ImportError as err:
        return [], f"nvidia-ml-py is not installed ({err})"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return [], f"NVML could not start ({err}): no NVIDIA driver or GPU on this host"
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append({
                "index": index,
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "memory_bytes": pynvml.nvmlDeviceGetMemoryInfo(handle).total,
                "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
                "cuda_driver_version": pynvml.nvmlSystemGetCudaDriverVersion(),
                "compute_capability": "".join(map(str, pynvml.nvmlDeviceGetCudaComputeCapability(handle))),
            })
        return gpus, None if gpus else "NVML found no GPU on this host"
    except pynvml.NVMLError as err:
        return [], f"NVML error while listing GPUs: {err}"
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
