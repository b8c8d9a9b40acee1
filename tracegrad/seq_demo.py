"""`python -m tracegrad demo --seq`: character-level language models trained on the standard library's source.

Two models learn to predict the next character of Python source code that ships with Python itself (a fixed list
of standard-library modules, read from disk: no download):

- an LSTM: Embedding -> LSTM (hidden 128) -> Linear;
- a small transformer: Embedding + learned positions -> 2-layer TransformerEncoder (d_model 64, 4 heads,
  feedforward 128, causal mask) -> Linear.

Each trains on random windows of 32 characters, batch 32, with Adam. Its training step is compiled by the default
`tracegrad.compile` (numba, tiered: the interpreter runs the step until the native code arrives from the
background compile); the first steps also run eagerly, from the same initial weights on the same batches, to time
eager mode and compare the losses. At the end: the loss on held-out text, and text generated in eager mode, one
character at a time from a growing context (the dynamic graph's showcase: eager mode runs any length as it comes,
a compiled function would trace once per new length).

The models are written once for any PyTorch-like library (`lib=tracegrad` or `lib=torch`): the benchmark suite
`python -m tracegrad bench --suite seq` times the same code in PyTorch.

>>> text, chars = corpus(max_chars=2000)
>>> len(text), chars[:3]
(2000, ['\\n', ' ', '!'])
>>> model = char_lstm(len(chars), hidden=16)
>>> logits, (h, c) = model(tracegrad.zeros(2, 5, dtype=tracegrad.int64))
>>> tuple(logits.shape), tuple(h.shape)
((2, 5, 96), (1, 2, 16))
"""
from __future__ import annotations

import functools
import os
import statistics
import time

import numpy as np

import tracegrad

SEQ_LEN, BATCH = 32, 32
_print = functools.partial(print, flush=True)  # progress shows as it happens, also when the output is a pipe
# NOTE: read in this order and cut at `max_chars`: the same text for a given Python version (the validation split
# is the end of it, inside collections/__init__.py)
SOURCES = ("textwrap", "string", "heapq", "bisect", "functools", "contextlib", "fractions", "random", "pprint",
           "copy", "queue", os.path.join("collections", "__init__"))
# every character the models know: printable ASCII and the newline (others become "?", tabs and form feeds spaces)
CHARS = ["\n"] + [chr(c) for c in range(32, 127)]


def corpus(max_chars: int = 300_000) -> tuple[str, list[str]]:
    """The training text (standard-library modules' source, concatenated, at most `max_chars` characters) and the
    vocabulary: `CHARS`, 96 characters."""
    lib = os.path.dirname(os.__file__)
    parts = []
    for name in SOURCES:
        with open(os.path.join(lib, name + ".py"), encoding="utf-8") as f:
            parts.append(f.read())
    text = "\n".join(parts)[:max_chars]
    text = text.replace("\t", " ").replace("\x0c", " ").replace("\r", "")
    text = text.encode("ascii", "replace").decode("ascii")
    return text, CHARS


def encode(text: str, chars: list[str] = CHARS) -> np.ndarray:
    """The characters' indices in `chars`, as int64.

    >>> encode("ab\\n").tolist()
    [66, 67, 0]
    """
    index = {c: i for i, c in enumerate(chars)}
    return np.array([index[c] for c in text], np.int64)


def decode(ids, chars: list[str] = CHARS) -> str:
    return "".join(chars[int(i)] for i in ids)


def batches(data: np.ndarray, steps: int | None, seed: int = 0, batch: int = BATCH, seq_len: int = SEQ_LEN,
            lib=tracegrad):
    """`steps` pairs (x, y) of (batch, seq_len) int64 tensors (None: without end): random windows of `data`, and
    the same windows one character later (the targets). The same seed gives the same windows."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(seq_len + 1)
    for _ in range(steps) if steps is not None else iter(int, 1):
        windows = data[rng.integers(0, len(data) - seq_len, batch)[:, None] + offsets]
        yield lib.from_numpy(windows[:, :-1].copy()), lib.from_numpy(windows[:, 1:].copy())


# ------------------------------------------------------------------------------------------------- the models
def char_lstm(vocab: int, hidden: int = 128, lib=tracegrad):
    """Embedding(vocab, hidden) -> LSTM(hidden, hidden) -> Linear(hidden, vocab), batch first. ``model(x, state)``
    returns the next character's logits at every position and the LSTM's state (h, c)."""
    nn = lib.nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x, state=None):
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    return CharLSTM()


def char_transformer(vocab: int, d_model: int = 64, nhead: int = 4, dim_feedforward: int = 128, num_layers: int = 2,
                     block: int = SEQ_LEN, lib=tracegrad):
    """Embedding + learned positions -> TransformerEncoder with a causal mask -> Linear, batch first, for
    contexts of up to `block` characters. ``model(x)`` returns the next character's logits at every position."""
    nn = lib.nn

    class CharTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.pos = nn.Embedding(block, d_model)
            layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, vocab)

        def forward(self, x):
            t = x.shape[1]
            h = self.embed(x) + self.pos(lib.arange(t))
            # NOTE: position i may attend to positions <= i only; is_causal=True says it is the causal mask, so no
            # value-dependent check of the mask runs (under compile it would be a guard)
            mask = nn.Transformer.generate_square_subsequent_mask(t)
            return self.head(self.encoder(h, mask=mask, is_causal=True))

    return CharTransformer()


MODELS = {"lstm": ("LSTM", char_lstm), "transformer": ("transformer", char_transformer)}


def logits_of(out):
    """The logits of either model's output (the LSTM also returns its state)."""
    return out[0] if isinstance(out, tuple) else out


def training_step(model, opt, lib=tracegrad):
    """The step every mode runs: forward, cross-entropy over all positions, backward, Adam; returns the loss."""
    def step(x, y):
        opt.zero_grad()
        logits = logits_of(model(x))
        loss = lib.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()  # a number of the graph under compile: recomputed at every call, never a retrace
    return step


@tracegrad.no_grad()
def evaluate(model, data: np.ndarray, max_windows: int = 256) -> float:
    """The mean cross-entropy (nats per character) over consecutive windows of `data` (at most `max_windows`)."""
    model.eval()
    n = min(max_windows, (len(data) - 1) // SEQ_LEN)
    ids = data[:n * SEQ_LEN + 1]
    x = tracegrad.from_numpy(ids[:-1].reshape(n, SEQ_LEN).copy())
    y = tracegrad.from_numpy(ids[1:].reshape(n, SEQ_LEN).copy())
    total = 0.0
    for i in range(0, n, BATCH):
        logits = logits_of(model(x[i:i + BATCH]))
        total += tracegrad.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + BATCH].reshape(-1),
                                                       reduction="sum").item()
    model.train()
    return total / (n * SEQ_LEN)


@tracegrad.no_grad()
def generate(model, prompt: str, n: int, temperature: float = 0.8, seed: int = 0) -> str:
    """`prompt` and `n` characters drawn one at a time from the model's distribution over the next character
    (softmax of the logits / `temperature`), with a fixed seed. Eager mode: every call of the model sees another
    length. The LSTM reads the prompt once, then one character per step, carrying its state; the transformer reads
    the last characters, as many as it has positions for, at every step."""
    model.eval()
    g = tracegrad.Generator().manual_seed(seed)
    ids = encode(prompt).tolist()
    recurrent = hasattr(model, "lstm")
    block = None if recurrent else model.pos.num_embeddings
    state, feed = None, ids
    for _ in range(n):
        if recurrent:
            logits, state = model(tracegrad.tensor([feed]), state)
        else:
            logits = model(tracegrad.tensor([ids[-block:]]))
        probs = tracegrad.softmax(logits[0, -1] / temperature, dim=-1)
        ids.append(int(tracegrad.multinomial(probs, 1, generator=g)))
        feed = ids[-1:]
    model.train()
    return decode(ids)


# ------------------------------------------------------------------------------------------------- training
def train(kind: str, train_data: np.ndarray, steps: int, compiled: bool, lr: float, seed: int = 0,
          log_every: int = 0, out=_print, until_native: float = 0.0, native_steps: int = 50) -> dict:
    """Train a fresh model (`kind`: "lstm" or "transformer", initial weights from `seed`) for `steps` steps, eager
    or with the default `compile`; returns the model, the step, and per step: loss, time, tier ("eager",
    "interpreter" or "native") and start time (seconds after the first call). With `until_native` seconds, a
    compiled step whose native code has not run `native_steps` steps yet trains on past `steps`, for at most that
    much longer, so that both tiers are timed."""
    tracegrad.manual_seed(seed)
    model = MODELS[kind][1](len(CHARS))
    opt = tracegrad.optim.Adam(model.parameters(), lr=lr)
    step = training_step(model, opt)
    if compiled:
        step = tracegrad.compile(step)  # the default: numba kernels, the interpreter until they are ready
    losses, times, tiers, starts = [], [], [], []
    start = time.perf_counter()
    def log(i: int) -> None:
        recent = times[-log_every:] if i else times
        out(f"  step {i:>5}  loss {losses[-1]:6.3f}   {statistics.median(recent) * 1e3:7.1f} ms/step  ({tiers[-1]})")

    deadline = None
    for i, (x, y) in enumerate(batches(train_data, None, seed)):
        if i >= steps:
            waiting = compiled and step.last_variant.backend == "numba" and tiers.count("native") < native_steps
            deadline = deadline or time.perf_counter() + until_native
            if not waiting or time.perf_counter() > deadline:
                if log_every and i > steps:
                    log(i - 1)
                break
            if i == steps:
                out(f"  (on until native code has run {native_steps} steps, for at most {until_native:.0f} s more)")
        t0 = time.perf_counter()
        loss = step(x, y)
        times.append(time.perf_counter() - t0)
        starts.append(t0 - start)
        losses.append(loss)
        tiers.append((step.last_variant.tier or "trace") if compiled else "eager")
        if log_every and ((i < steps and (i % log_every == 0 or i == steps - 1))
                          or tiers[-2:] == ["interpreter", "native"]):
            log(i)
    return {"model": model, "step": step, "losses": losses, "times": times, "tiers": tiers, "starts": starts}


def _ms(times: list) -> str:
    """Median and range of step times, in ms."""
    return (f"{statistics.median(times) * 1e3:.1f} ms (range {min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}, "
            f"{len(times)} steps)")


def report_times(eager: dict, comp: dict, out=_print) -> None:
    """Time per step of each mode and tier, when native code took over, and how far the losses are apart."""
    out(f"  eager:                  {_ms(eager['times'][3:] or eager['times'])}")
    tiers = comp["tiers"]
    interp = [t for t, tier in zip(comp["times"][3:], tiers[3:]) if tier == "interpreter"]
    native = [t for t, tier in zip(comp["times"], tiers) if tier == "native"]
    out(f"  compiled, first 3 calls: {', '.join(f'{t:.2f}' for t in comp['times'][:3])} s (trace, trace again: "
        "Adam's first step created its state; then the first replay)")
    if interp:
        out(f"  compiled, interpreter:  {_ms(interp)}")
    variant = comp["step"].last_variant
    if native:
        first = tiers.index("native")
        out(f"  compiled, numba:        {_ms(native)}; native code took over at step {first + 1}, "
            f"{comp['starts'][first]:.1f} s after the first call ({variant.native_from})")
    elif variant.backend == "numba":
        out("  compiled, numba:        native code had not arrived yet (its kernels compile in a background process, "
            "tens of seconds with an empty kernel cache; a second run loads them from the cache)")
    n = min(len(eager["losses"]), len(comp["losses"]))
    diff = max(abs(a - b) for a, b in zip(eager["losses"][:n], comp["losses"][:n]))
    out(f"  max |compiled loss - eager loss| over the first {n} steps: {diff:.2g} (the interpreter is bit-equal to "
        "eager, numba within float32 round-off)")


def run(steps: int | None = None, eager_steps: int | None = None, models=("lstm", "transformer"),
        quick: bool = False, prompt: str = "def ", sample_chars: int = 240, until_native: float | None = None,
        out=_print) -> dict:
    """Train each of `models` compiled for `steps` steps (and on, for at most `until_native` seconds, until native
    code has run 50 steps: 30 by default, 0 with `quick`) and eagerly for `eager_steps` (from the same weights, on
    the same batches); print losses, times, a validation loss and a generated sample; returns the results."""
    defaults = {"lstm": (300, 1e-2), "transformer": (300, 5e-3)}  # steps, Adam's learning rate
    text, chars = corpus(40_000 if quick else 300_000)
    data = encode(text, chars)
    cut = int(len(data) * 0.9)
    train_data, val_data = data[:cut], data[cut:]
    out(f"tracegrad demo --seq: character-level language models on {len(text):,} characters of the standard "
        f"library's source ({', '.join(s.split(os.sep)[0] for s in SOURCES)}; the last 10% held out), "
        f"{len(chars)} characters, windows of {SEQ_LEN}, batch {BATCH}, Adam, 1 thread")
    tracegrad.set_num_threads(1)  # BLAS and numba's parallel loops (numba imported later gets it too)
    results = {}
    for kind in models:
        label, _ = MODELS[kind]
        n_steps, lr = defaults[kind]
        n_steps = steps or (30 if quick else n_steps)
        n_eager = min(n_steps, eager_steps or (10 if quick else 30))
        log_every = max(1, n_steps // 10)
        probe = MODELS[kind][1](len(chars))
        out(f"\n== {label}: {sum(p.numel() for p in probe.parameters()):,} parameters; loss in nats per character "
            f"(uniform guessing: {np.log(len(chars)):.2f})")
        out(f"compiled (the default tracegrad.compile), {n_steps} steps:")
        comp = train(kind, train_data, n_steps, True, lr, log_every=log_every, out=out,
                     until_native=(0.0 if quick else 30.0) if until_native is None else until_native)
        out(f"eager, the first {n_eager} steps (same weights, same batches):")
        eager = train(kind, train_data, n_eager, False, lr, log_every=max(1, n_eager // 3), out=out)
        out("time per step:")
        report_times(eager, comp, out)
        val = evaluate(comp["model"], val_data)
        out(f"after {len(comp['losses'])} steps: validation loss (held-out text) {val:.3f}; training loss, mean of "
            f"the last 10 steps: {statistics.mean(comp['losses'][-10:]):.3f}")
        t0 = time.perf_counter()
        sample = generate(comp["model"], prompt, sample_chars)
        out(f"generated in eager mode (one call of the model per character, {time.perf_counter() - t0:.1f} s), "
            "temperature 0.8, seed 0:")
        out("-" * 72 + "\n" + sample + "\n" + "-" * 72)
        results[kind] = {"compiled": comp, "eager": eager, "val_loss": val, "sample": sample}
    return results
