"""`python -m tracegrad demo`: the main job (see README)."""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracegrad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the classic autograd walkthrough, printed step by step")
    demo.add_argument("--quick", action="store_true", help="accepted for symmetry with later demos")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import training, walkthrough
        walkthrough()
        training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
