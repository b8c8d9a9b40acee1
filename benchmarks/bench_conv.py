"""The conv-net suite (tracegrad/bench/conv.py); also python -m tracegrad bench --suite conv."""
from tracegrad.bench.conv import main

if __name__ == "__main__":
    main()
