-- family: shuffle
-- tables: groupby
-- description: example user SQL workload: the ten id1 keys with the largest total v3
SELECT id1, sum(v3) AS v3_sum, count(*) AS n
FROM groupby
GROUP BY id1
ORDER BY v3_sum DESC
LIMIT 10
