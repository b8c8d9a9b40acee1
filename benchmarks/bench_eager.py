"""The eager benchmark suite (tracegrad/bench/eager.py); also python -m tracegrad bench --suite eager."""
from tracegrad.bench.eager import main

if __name__ == "__main__":
    main()
