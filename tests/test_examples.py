"""The character-level language model example (examples/char_lm.py, tracegrad/seq_demo.py): it learns, the compiled
step matches eager mode, and it generates text.

The suite runs it on the interpreter (conftest.py: TRACEGRAD_BACKEND=interpret), so compiled losses equal eager's
bit for bit; nothing here asserts speed.
"""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import tracegrad as tg
from tracegrad import seq_demo

ROOT = Path(__file__).resolve().parent.parent


def test_char_lm_example_quick_learns_matches_eager_and_generates_text():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "char_lm.py"), "--quick", "--chars", "80"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    sections = out.split("\n== ")[1:]
    assert [s.split(":")[0] for s in sections] == ["LSTM", "transformer"], out
    for section in sections:
        compiled = section.split("eager, the first")[0]
        losses = [float(v) for v in re.findall(r"step +\d+ +loss +([\d.]+)", compiled)]
        assert len(losses) >= 5
        assert losses[0] > 4.4 and losses[-1] < losses[0] - 1.0, section  # from ~ln(96) = 4.56 to below 3.5
        assert "max |compiled loss - eager loss| over the first 10 steps: 0 " in section
        val = float(re.search(r"validation loss \(held-out text\) ([\d.]+)", section).group(1))
        assert val < math.log(96) - 0.8
        sample = section.split("-" * 72 + "\n")[1]
        assert sample.startswith("def ") and len(sample.rstrip("\n")) == len("def ") + 80


def test_demo_seq_command_runs_the_same_job(capsys):
    from tracegrad.__main__ import main

    main(["demo", "--seq", "--quick", "--steps", "4"])
    out = capsys.readouterr().out
    assert "tracegrad demo --seq" in out and out.count("generated in eager mode") == 2
    assert "compiled (the default tracegrad.compile), 4 steps" in out


def test_corpus_is_the_standard_librarys_source_in_a_fixed_vocabulary():
    text, chars = seq_demo.corpus(max_chars=5000)
    assert len(text) == 5000 and len(chars) == 96 and set(text) <= set(chars)
    assert text.startswith('"""Text wrapping and filling.')  # textwrap.py, the first of SOURCES
    assert seq_demo.decode(seq_demo.encode(text)) == text


def test_batches_are_windows_and_their_next_characters():
    data = np.arange(1000, dtype=np.int64)
    first = list(seq_demo.batches(data, 3, seed=1, batch=4, seq_len=8))
    again = list(seq_demo.batches(data, 3, seed=1, batch=4, seq_len=8))
    for (x, y), (x2, y2) in zip(first, again):
        assert x.shape == (4, 8) and x.dtype is tg.int64
        np.testing.assert_array_equal(y.numpy(), x.numpy() + 1)  # the targets: the next character
        np.testing.assert_array_equal(x.numpy(), x2.numpy())     # the same seed, the same windows


def test_generation_runs_eagerly_on_contexts_of_every_length():
    tg.manual_seed(0)
    lstm, transformer = seq_demo.char_lstm(96, hidden=16), seq_demo.char_transformer(96, d_model=16, block=8)
    for model in (lstm, transformer):
        text = seq_demo.generate(model, "ab", 20, seed=3)
        assert text.startswith("ab") and len(text) == 22  # the transformer's context grows past its block of 8
        assert seq_demo.generate(model, "ab", 20, seed=3) == text  # a fixed seed, the same text
        assert model.training  # generation leaves the model as it found it
