"""The sequence-model suite (tracegrad/bench/seq.py); also python -m tracegrad bench --suite seq."""
from tracegrad.bench.seq import main

if __name__ == "__main__":
    main()
