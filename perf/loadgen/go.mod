module ringfence/perf/loadgen

go 1.19
