"""`python -m tracegrad demo | bench | walkthrough | cache`: the main job, the benchmark table, the autograd
tutorial, the kernel cache."""
import argparse
import sys

from .bench import SUITES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracegrad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train an MLP on scikit-learn's digits eagerly and compiled, and compare "
                          "(--seq: character-level language models)")
    demo.add_argument("--quick", action="store_true", help="two epochs instead of fifteen (a few seconds)")
    demo.add_argument("--seq", action="store_true", help="instead: an LSTM and a transformer learn the standard "
                      "library's source, eagerly and compiled, and generate text (tracegrad/seq_demo.py)")
    demo.add_argument("--steps", type=int, help="--seq: training steps per model (default 300)")
    demo.add_argument("--out", default="build/tracegrad-demo", help="where the IR and kernels are written")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench = sub.add_parser("bench", help="the benchmark tables: eager overhead, training speed, compiled steps")
    bench.add_argument("--quick", action="store_true", help="few repetitions: checks that everything runs")
    bench.add_argument("--suite", choices=SUITES, action="append", help="run only this suite (repeatable)")
    bench.add_argument("--plot", metavar="FILE", help="save the compiled-step figures as a PNG")
    sub.add_parser("walkthrough", help="the classic autograd tutorial, printed step by step")
    cache = sub.add_parser("cache", help="where the compiled-kernel cache is and how big; --clear empties it")
    cache.add_argument("--clear", action="store_true", help="delete every cached kernel")
    args = parser.parse_args(argv)
    if args.command == "demo" and args.seq:
        from .seq_demo import run
        run(steps=args.steps, quick=args.quick)
    elif args.command == "demo":
        from .demo import run
        run(quick=args.quick, out_dir=args.out, progress=not args.no_progress)
    elif args.command == "bench":
        from .bench import main as bench_main
        bench_main(args.suite or SUITES, quick=args.quick, plot=args.plot)
    elif args.command == "cache":
        from .runtime.native import cache_report, clear_cache
        if args.clear:
            print(f"removed {clear_cache()} files")
        print(cache_report())
    elif args.command == "walkthrough":
        from .demo import walkthrough
        walkthrough()
    return 0


if __name__ == "__main__":
    sys.exit(main())
