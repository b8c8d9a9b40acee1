"""A character-level language model, eager and compiled: an LSTM and a small transformer learn to write Python by
reading the standard library's own source (no download), then generate text.

    python examples/char_lm.py                      # both models, 300 steps each (one to two minutes)
    python examples/char_lm.py --model lstm --steps 2000 --prompt "class "
    python examples/char_lm.py --quick              # a few seconds: 30 steps on 40,000 characters

The models, data, training loop and generation are in `tracegrad/seq_demo.py` (`python -m tracegrad demo --seq`
runs the same): each training step is compiled with the default `tracegrad.compile` (numba kernels; until they
are compiled in the background, the interpreter runs the step), its first steps also run eagerly from the same
weights for comparison, and the text is generated eagerly, one character at a time.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))  # run from a checkout

from tracegrad.seq_demo import MODELS, run  # noqa: E402 - after the path set-up


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=[*MODELS, "both"], default="both", help="which model(s) to train")
    ap.add_argument("--steps", type=int, help="compiled training steps per model (default 300; --quick: 30)")
    ap.add_argument("--eager-steps", type=int, help="eager steps, for timing and comparison (default 30; --quick: 10)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 30 steps on 40,000 characters")
    ap.add_argument("--until-native", type=float, help="after --steps, train on until native code has run 50 steps, "
                    "for at most this many seconds (default 30; --quick: 0)")
    ap.add_argument("--prompt", default="def ", help="the start of the generated text")
    ap.add_argument("--chars", type=int, default=240, help="how many characters to generate")
    args = ap.parse_args(argv)
    models = tuple(MODELS) if args.model == "both" else (args.model,)
    run(steps=args.steps, eager_steps=args.eager_steps, quick=args.quick, prompt=args.prompt, sample_chars=args.chars,
        until_native=args.until_native, models=models)


if __name__ == "__main__":
    main()
