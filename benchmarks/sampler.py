"""The NVML sampler's own cost at its default rate, as a share of wall time (target: under 1%).

Measured beside an idle 10-second region: the thread's CPU time over the region's wall time. Shown as n/a,
with the reason, where NVML has no GPU to read."""

import time

from harness import gpu


class NvmlSampler:
    timeout = 120

    def setup(self):
        gpus, problem = gpu.probe()
        if problem:
            raise NotImplementedError(problem)
        with gpu.Sampler(interval_s=gpu.DEFAULT_INTERVAL_S) as sampler:
            time.sleep(10)
        self.found = sampler.result()
        if not self.found["available"]:
            raise NotImplementedError(self.found["reason"])

    def track_overhead_pct(self):
        return self.found["sampler_overhead_pct"]

    track_overhead_pct.unit = "% of wall time"
