"""The compiled benchmark suite (tracegrad/bench/compiled.py); also python -m tracegrad bench --suite compiled."""
from tracegrad.bench.compiled import main

if __name__ == "__main__":
    main()
