"""The data-parallel suite (tracegrad/bench/distributed.py); also python -m tracegrad bench --suite distributed."""
from tracegrad.bench.distributed import main

if __name__ == "__main__":
    main()
