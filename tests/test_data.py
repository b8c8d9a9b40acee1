"""tracegrad.utils.data: datasets, samplers, default_collate and the DataLoader, against PyTorch's semantics.

Random streams are tracegrad's own, so shuffling is checked for its properties (a permutation per epoch, a new one
each epoch, reproducible per seed); the torch tests compare only deterministic things (structure, lengths, errors)
and are skipped without torch."""
import collections
import math
import re
import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

Point = collections.namedtuple("Point", "x y")


def _xy(n=10):
    return TensorDataset(tg.arange(float(n * 2)).reshape(n, 2), tg.arange(n) * 10)


def _ids(loader):
    """The sample ids (the int label column / 10) of one epoch, in order."""
    return [v // 10 for _, y in loader for v in y.tolist()]


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i

    def __len__(self):
        return self.n


class Stream(IterableDataset):
    def __init__(self, n, with_len=True):
        self.n = n
        self.with_len = with_len

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        if not self.with_len:
            raise TypeError("no len")
        return self.n


# ------------------------------------------------------------------------------------------ datasets


def test_tensor_dataset_indexing_and_len():
    x, y = tg.arange(12.).reshape(4, 3), tg.tensor([1, 0, 1, 1])
    ds = TensorDataset(x, y)
    assert len(ds) == 4 and ds.tensors == (x, y)
    xi, yi = ds[2]
    assert xi.tolist() == [6., 7., 8.] and xi.dtype is tg.float32
    assert yi.shape == () and yi.item() == 1 and yi.dtype is tg.int64
    xs, ys = ds[1:3]
    assert xs.shape == (2, 3) and ys.tolist() == [0, 1]
    assert ds[-1][1].item() == 1
    assert len(TensorDataset(x)) == 4 and len(TensorDataset(x)[0]) == 1


def test_tensor_dataset_size_mismatch():
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(tg.zeros(3, 2), tg.zeros(4))


def test_dataset_base_and_add():
    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        Dataset()[0]
    both = Range(3) + Range(2)
    assert isinstance(both, ConcatDataset) and len(both) == 5 and [both[i] for i in range(5)] == [0, 1, 2, 0, 1]
    assert isinstance(Stream(2) + Stream(3), ChainDataset)
    assert list(Stream(2) + Stream(3)) == [0, 1, 0, 1, 2] and len(Stream(2) + Stream(3)) == 5


def test_concat_dataset():
    ds = ConcatDataset([Range(2), [10, 11, 12], Range(0), _xy(2)])
    assert len(ds) == 7 and ds.cumulative_sizes == [2, 5, 5, 7]
    assert [ds[i] for i in range(5)] == [0, 1, 10, 11, 12]
    assert ds[5][1].item() == 0 and ds[-1][1].item() == 10 and ds[-7] == 0
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        ds[-8]
    with pytest.raises(IndexError):
        ds[7]
    with pytest.raises(AssertionError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="does not support IterableDataset"):
        ConcatDataset([Range(2), Stream(2)])


def test_subset():
    sub = Subset(Range(10), [7, 2, 5])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [7, 2, 5] and sub[-1] == 5
    tsub = Subset(_xy(6), [4, 1])
    assert tsub[[1, 0]][1].tolist() == [10, 40]  # a list index goes to the dataset in one call
    assert tsub.__getitems__([0, 1])[0][1].item() == 40
    assert _ids(DataLoader(tsub, batch_size=2)) == [4, 1]


def test_subset_uses_the_datasets_getitems():
    class Batched(Range):
        calls = []

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [i * 100 for i in indices]

    ds = Batched(10)
    batches = [b.tolist() for b in DataLoader(Subset(ds, [9, 8, 7]), batch_size=2)]
    assert batches == [[900, 800], [700]] and ds.calls == [[9, 8], [7]]


def test_random_split_integer_lengths():
    parts = random_split(Range(10), [3, 7], generator=tg.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [3, 7] and all(isinstance(p, Subset) for p in parts)
    a, b = ([p[i] for i in range(len(p))] for p in parts)
    assert not set(a) & set(b) and sorted(a + b) == list(range(10))
    again = random_split(Range(10), [3, 7], generator=tg.Generator().manual_seed(1))
    assert [p.indices for p in again] == [p.indices for p in parts]
    assert sorted(random_split(Range(10), [10], generator=tg.Generator())[0].indices) == list(range(10))


@pytest.mark.parametrize("n,fractions,lengths", [
    (10, [0.7, 0.3], [7, 3]),
    (10, [0.33, 0.33, 0.34], [4, 3, 3]),   # floors 3, 3, 3; the remainder goes round robin from the start
    (11, [0.5, 0.5], [6, 5]),
    (5, [0.25, 0.25, 0.25, 0.25], [2, 1, 1, 1]),
])
def test_random_split_fractions(n, fractions, lengths):
    parts = random_split(Range(n), fractions, generator=tg.Generator().manual_seed(0))
    assert [len(p) for p in parts] == lengths
    flat = [i for p in parts for i in p.indices]
    assert sorted(flat) == list(range(n))


def test_random_split_errors_and_warnings():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset!"):
        random_split(Range(10), [3, 6])
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(Range(10), [0.5, 0.2])
    with pytest.warns(UserWarning) as record:
        parts = random_split(Range(2), [0.9, 0.05, 0.05])
    assert [str(w.message) for w in record] == [f"Length of split at index {i} is 0. This might result in an empty "
                                                f"dataset." for i in (1, 2)]
    assert [len(p) for p in parts] == [2, 0, 0]


def test_random_split_without_generator_uses_the_global_seed():
    tg.manual_seed(5)
    first = [p.indices for p in random_split(Range(20), [5, 15])]
    second = [p.indices for p in random_split(Range(20), [5, 15])]
    tg.manual_seed(5)
    assert [p.indices for p in random_split(Range(20), [5, 15])] == first
    assert first != second


# ------------------------------------------------------------------------------------------ samplers


def test_sequential_and_batch_sampler():
    assert list(SequentialSampler(Range(4))) == [0, 1, 2, 3] and len(SequentialSampler(Range(4))) == 4
    bs = BatchSampler(SequentialSampler(Range(7)), 3, False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    bs = BatchSampler(range(7), 3, True)
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and len(bs) == 2
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            BatchSampler(range(3), bad, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=1"):
        BatchSampler(range(3), 2, 1)


def test_random_sampler():
    g = tg.Generator().manual_seed(3)
    s = RandomSampler(Range(8), generator=g)
    epochs = [list(s) for _ in range(3)]
    assert all(sorted(e) == list(range(8)) for e in epochs) and len(s) == 8
    assert epochs[0] != epochs[1]
    assert list(RandomSampler(Range(8), generator=tg.Generator().manual_seed(3))) == epochs[0]
    more = list(RandomSampler(Range(4), num_samples=10, generator=g))
    assert len(more) == 10 and sorted(more[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]
    fewer = list(RandomSampler(Range(4), num_samples=3, generator=g))
    assert len(set(fewer)) == 3
    draws = list(RandomSampler(Range(3), replacement=True, num_samples=70, generator=g))
    assert len(draws) == 70 and set(draws) == {0, 1, 2}
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(Range(0))
    with pytest.raises(TypeError, match="replacement should be a boolean value"):
        RandomSampler(Range(3), replacement=1)


def test_subset_random_sampler():
    tg.manual_seed(0)
    a = list(SubsetRandomSampler([5, 6, 7, 8]))
    tg.manual_seed(0)
    assert list(SubsetRandomSampler([5, 6, 7, 8])) == a and sorted(a) == [5, 6, 7, 8]


# ------------------------------------------------------------------------------------------ loader: order and shapes


def test_loader_sequential_batches():
    loader = DataLoader(_xy(5), batch_size=2)
    batches = list(loader)
    assert len(batches) == 3 == len(loader)
    (x0, y0), (x1, y1), (x2, y2) = batches
    assert x0.shape == (2, 2) and x0.dtype is tg.float32 and x0.tolist() == [[0., 1.], [2., 3.]]
    assert y0.shape == (2,) and y0.dtype is tg.int64 and y0.tolist() == [0, 10]
    assert x1.tolist() == [[4., 5.], [6., 7.]] and y1.tolist() == [20, 30]
    assert x2.shape == (1, 2) and y2.tolist() == [40]
    assert isinstance(batches[0], list)  # TensorDataset samples are tuples; default_collate gives a list, as PyTorch
    assert [b[1].tolist() for b in loader] == [[0, 10], [20, 30], [40]]  # a loader can be iterated again


def test_loader_default_batch_size_is_one():
    batches = list(DataLoader(Range(3)))
    assert [b.tolist() for b in batches] == [[0], [1], [2]] and batches[0].shape == (1,)


def test_loader_drop_last():
    loader = DataLoader(_xy(5), batch_size=2, drop_last=True)
    assert len(loader) == 2 and _ids(loader) == [0, 1, 2, 3]
    assert len(DataLoader(_xy(4), batch_size=2, drop_last=True)) == 2
    assert list(DataLoader(_xy(1), batch_size=2, drop_last=True)) == []


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7])
@pytest.mark.parametrize("batch_size", [1, 3, 6, 10])
@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_len(n, batch_size, drop_last):
    loader = DataLoader(Range(n), batch_size=batch_size, drop_last=drop_last)
    expected = n // batch_size if drop_last else math.ceil(n / batch_size)
    assert len(loader) == expected == len(list(loader)) == len(iter(loader))


def test_loader_batch_size_none_yields_samples():
    loader = DataLoader(_xy(3), batch_size=None)
    samples = list(loader)
    assert len(loader) == 3 and len(samples) == 3
    assert isinstance(samples[0], list)  # default_convert: tuples become lists, tensors stay as they are
    assert samples[1][0].tolist() == [2., 3.] and samples[1][1].shape == () and samples[1][1].item() == 10
    assert list(DataLoader(Range(3), batch_size=None)) == [0, 1, 2]
    arrays = list(DataLoader([np.array([1.5, 2.5]), np.array([3.5, 4.5])], batch_size=None))
    assert isinstance(arrays[0], tg.Tensor) and arrays[0].dtype is tg.float64 and arrays[1].tolist() == [3.5, 4.5]


def test_loader_custom_collate_fn():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return sum(s[1].item() for s in samples)

    assert list(DataLoader(_xy(5), batch_size=2, collate_fn=collate)) == [10, 50, 40] and seen == [2, 2, 1]
    assert list(DataLoader(Range(3), batch_size=None, collate_fn=lambda s: -s)) == [0, -1, -2]


def test_loader_custom_samplers():
    assert _ids(DataLoader(_xy(5), sampler=[4, 0, 2], batch_size=2)) == [4, 0, 2]
    loader = DataLoader(_xy(5), batch_sampler=[[3], [1, 0, 4]])
    assert [y.tolist() for _, y in loader] == [[30], [10, 0, 40]] and len(loader) == 2
    assert loader.batch_size is None and loader.drop_last is False
    assert list(DataLoader(Range(4), sampler=[3, 1], batch_size=None)) == [3, 1]  # default_convert leaves ints


def test_loader_dict_tuple_and_namedtuple_samples():
    class Records(Dataset):
        def __getitem__(self, i):
            return {"image": tg.full((2, 2), float(i)), "label": i, "weight": 0.5 * i, "name": f"s{i}",
                    "pair": (i, [True, False]), "point": Point(np.float32(i), np.arange(3) + i)}

        def __len__(self):
            return 3

    batch = next(iter(DataLoader(Records(), batch_size=3)))
    assert list(batch) == ["image", "label", "weight", "name", "pair", "point"]
    assert batch["image"].shape == (3, 2, 2) and batch["image"][2, 0, 0].item() == 2.0
    assert batch["label"].dtype is tg.int64 and batch["label"].tolist() == [0, 1, 2]
    assert batch["weight"].dtype is tg.float64 and batch["weight"].tolist() == [0.0, 0.5, 1.0]
    assert batch["name"] == ["s0", "s1", "s2"]
    pair = batch["pair"]
    assert isinstance(pair, list) and pair[0].tolist() == [0, 1, 2]
    assert isinstance(pair[1], list) and pair[1][0].dtype is tg.bool and pair[1][0].tolist() == [True] * 3
    point = batch["point"]
    assert type(point) is Point and point.x.dtype is tg.float32 and point.x.tolist() == [0., 1., 2.]
    assert point.y.dtype is tg.int64 and point.y.shape == (3, 3) and point.y[2].tolist() == [2, 3, 4]


def test_iterable_dataset_loader():
    loader = DataLoader(Stream(5), batch_size=2)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4]] and len(loader) == 3
    loader = DataLoader(Stream(5), batch_size=2, drop_last=True)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3]] and len(loader) == 2
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]
    assert [b.tolist() for b in DataLoader(Stream(3, with_len=False), batch_size=2)] == [[0, 1], [2]]
    with pytest.raises(ValueError, match="expected unspecified shuffle option, but got shuffle=True"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="expected unspecified sampler option"):
        DataLoader(Stream(3), sampler=[0])


# ------------------------------------------------------------------------------------------ loader: shuffling


def test_shuffle_covers_every_sample_once_per_epoch():
    loader = DataLoader(_xy(23), batch_size=4, shuffle=True)
    for _ in range(3):
        ids = _ids(loader)
        assert sorted(ids) == list(range(23))
        assert ids != list(range(23))
    assert len(loader) == 6


def test_shuffle_epochs_differ_and_runs_reproduce():
    def run(seed):
        tg.manual_seed(seed)
        loader = DataLoader(_xy(20), batch_size=5, shuffle=True)
        return [_ids(loader) for _ in range(3)]

    a = run(7)
    assert a[0] != a[1] and a[1] != a[2]
    assert run(7) == a  # a fresh loader after the same seed gives the same orders, epoch by epoch
    assert run(8) != a


def test_shuffle_with_generator_ignores_the_global_seed():
    def run(global_seed, g_seed=11):
        tg.manual_seed(global_seed)
        loader = DataLoader(_xy(20), batch_size=5, shuffle=True, generator=tg.Generator().manual_seed(g_seed))
        return [_ids(loader) for _ in range(2)]

    a = run(0)
    assert a[0] != a[1] and sorted(a[0]) == list(range(20))
    assert run(1) == a and run(123) == a
    assert run(0, g_seed=12) != a
    tg.manual_seed(0)
    state = tg.default_generator.get_state()
    list(DataLoader(_xy(20), batch_size=5, shuffle=True, generator=tg.Generator().manual_seed(11)))
    assert tg.default_generator.get_state() == state


def test_shuffle_draws_per_epoch_from_the_global_generator():
    tg.manual_seed(3)
    loader = DataLoader(_xy(20), batch_size=20, shuffle=True)
    first = _ids(loader)
    tg.manual_seed(3)
    assert _ids(loader) == first  # the seed is drawn when the epoch starts, not when the loader is built


# ------------------------------------------------------------------------------------------ loader: arguments


def test_num_workers_is_not_supported():
    with pytest.raises(ValueError, match=r"num_workers > 0 is not supported: tracegrad's DataLoader runs in the "
                                         r"main process"):
        DataLoader(_xy(), num_workers=2)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(_xy(), num_workers=-1)
    assert DataLoader(_xy(), num_workers=0).num_workers == 0
    assert get_worker_info() is None


@pytest.mark.parametrize("kwargs,message", [
    ({"sampler": [0, 1], "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive with batch_size"),
    ({"batch_sampler": [[0]], "shuffle": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "sampler": [0]}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "batch_size=None option disables auto-batching"),
    ({"batch_size": 0}, "batch_size should be a positive integer value, but got batch_size=0"),
    ({"timeout": -1}, "timeout option should be non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor option could only be specified in multiprocessing"),
    ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
    ({"multiprocessing_context": "spawn"}, "multiprocessing_context can only be used with multi-process loading"),
])
def test_loader_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(_xy(), **kwargs)


def test_loader_attributes_and_frozen_fields():
    g = tg.Generator()
    loader = DataLoader(_xy(4), batch_size=3, shuffle=True, generator=g)
    assert isinstance(loader.sampler, RandomSampler) and loader.sampler.generator is g and loader.generator is g
    assert isinstance(loader.batch_sampler, BatchSampler) and loader.batch_size == 3 and not loader.drop_last
    assert loader.collate_fn is default_collate
    assert DataLoader(_xy(4), batch_size=None).collate_fn is default_convert
    assert isinstance(DataLoader(_xy(4)).sampler, SequentialSampler)
    for attr in ("batch_size", "sampler", "batch_sampler", "drop_last", "dataset"):
        with pytest.raises(ValueError, match=f"{attr} attribute should not be set after DataLoader is initialized"):
            setattr(loader, attr, None)
    loader.collate_fn = default_convert  # other attributes can change


def test_pin_memory_warns_and_is_a_no_op():
    with pytest.warns(UserWarning, match="no accelerator is found"):
        assert _ids(DataLoader(_xy(3), batch_size=2, pin_memory=True)) == [0, 1, 2]


# ------------------------------------------------------------------------------------------ default_collate


def test_default_collate_leaves():
    out = default_collate([tg.tensor([1., 2.]), tg.tensor([3., 4.])])
    assert out.shape == (2, 2) and out.dtype is tg.float32
    out = default_collate([np.array([1, 2], dtype=np.int64), np.array([3, 4], dtype=np.int64)])
    assert isinstance(out, tg.Tensor) and out.dtype is tg.int64 and out.tolist() == [[1, 2], [3, 4]]
    assert default_collate([np.zeros((2, 3), np.float32)] * 4).shape == (4, 2, 3)
    out = default_collate([1.5, 2.0])
    assert out.dtype is tg.float64 and out.tolist() == [1.5, 2.0]
    tg.set_default_dtype(tg.float64)
    assert default_collate([1.5]).dtype is tg.float64
    tg.set_default_dtype(tg.float32)
    assert default_collate([1.5]).dtype is tg.float64  # Python floats are always float64, as in PyTorch
    assert default_collate([1, 2]).dtype is tg.int64 and default_collate([True, False]).dtype is tg.bool
    assert default_collate(["a", "b"]) == ["a", "b"] and default_collate([b"a", b"b"]) == [b"a", b"b"]
    assert default_collate([np.int64(3), np.int64(4)]).tolist() == [3, 4]
    assert default_collate([np.float32(3), np.float32(4)]).dtype is tg.float32


def test_default_collate_structures():
    out = default_collate([(tg.zeros(2), 1), (tg.ones(2), 2)])
    assert isinstance(out, list) and out[0].shape == (2, 2) and out[1].tolist() == [1, 2]
    out = default_collate([[1, "a"], [2, "b"]])
    assert isinstance(out, list) and out[0].tolist() == [1, 2] and out[1] == ("a", "b")
    out = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert type(out) is Point and out.x.tolist() == [1, 3] and out.y.dtype is tg.float64
    out = default_collate([{"a": {"b": [1, 2]}}, {"a": {"b": [3, 4]}}])
    assert out["a"]["b"][0].tolist() == [1, 3] and out["a"]["b"][1].tolist() == [2, 4]
    od = default_collate([collections.OrderedDict(b=1, a=2)] * 2)
    assert type(od) is collections.OrderedDict and list(od) == ["b", "a"]


def test_default_collate_keeps_gradients_flowing():
    w = tg.ones(2, requires_grad=True)
    batch = default_collate([w * 2, w * 3])
    batch.sum().backward()
    assert w.grad.tolist() == [5.0, 5.0]


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 and "
                                           r"\[3\] at entry 1"):
        default_collate([tg.zeros(2), tg.zeros(3)])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        list(DataLoader([tg.zeros(2), tg.zeros(3)], batch_size=2))
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                                        "or lists; found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_default_convert():
    assert default_convert(3) == 3 and default_convert("s") == "s"
    out = default_convert((np.array([1, 2]), 1.5))
    assert isinstance(out, list) and isinstance(out[0], tg.Tensor) and out[1] == 1.5
    p = default_convert(Point(np.array(0.5), 2))
    assert type(p) is Point and isinstance(p.x, tg.Tensor) and p.x.dtype is tg.float64 and p.y == 2
    t = tg.zeros(2)
    assert default_convert(t) is t
    strings = np.array(["a"])
    assert default_convert(strings) is strings


def test_default_collate_numpy_float64_scalars_stay_float64():
    assert default_collate([np.float64(1.5), np.float64(2.5)]).dtype is tg.float64


# ------------------------------------------------------------------------------------------ parity with torch


def _structure(obj, torch_mod=None):
    """A comparable description: container kinds, and leaves' shape and dtype name."""
    if isinstance(obj, tg.Tensor) or (torch_mod is not None and isinstance(obj, torch_mod.Tensor)):
        return ("tensor", tuple(obj.shape), str(obj.dtype).split(".")[-1])
    if isinstance(obj, dict):
        return (type(obj).__name__, {k: _structure(v, torch_mod) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__, [_structure(v, torch_mod) for v in obj])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_structure(v, torch_mod) for v in obj])
    return ("value", obj)


def _samples(lib):
    return [
        [lib.tensor([1., 2.]), lib.tensor([3., 4.])],
        [(lib.zeros(2, 3), 1, 0.5, True, "a"), (lib.ones(2, 3), 2, 1.5, False, "b")],
        [[1, 2.5, "x"], [3, 4.5, "y"]],
        [{"x": np.arange(4.0), "y": np.int64(3), "z": {"w": [1, 2]}}] * 3,
        [Point(np.zeros(2, np.float32), np.bool_(True)), Point(np.ones(2, np.float32), np.bool_(False))],
        [np.arange(6).reshape(2, 3)] * 2,
    ]


@pytest.mark.parametrize("case", range(len(_samples(tg))))
def test_default_collate_structure_matches_torch(case):
    torch = pytest.importorskip("torch")
    ours = _structure(default_collate(_samples(tg)[case]))
    theirs = _structure(torch.utils.data.default_collate(_samples(torch)[case]), torch)
    assert ours == theirs


@pytest.mark.parametrize("sample", [
    (np.arange(3), 1), Point(np.zeros(2), "s"), {"a": np.array([1.5]), "b": [np.array([True])]}, [np.arange(2), 2.5],
])
def test_default_convert_structure_matches_torch(sample):
    torch = pytest.importorskip("torch")
    assert _structure(default_convert(sample)) == _structure(torch.utils.data.default_convert(sample), torch)


@pytest.mark.parametrize("n", [1, 7, 10, 11])
@pytest.mark.parametrize("lengths", [[0.5, 0.5], [0.1, 0.2, 0.7], [0.33, 0.33, 0.34], [0.25] * 4])
def test_random_split_lengths_match_torch(n, lengths):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the zero-length-split warning
        ours = [len(p) for p in random_split(Range(n), lengths)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), lengths)]
    assert ours == theirs


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}, {"batch_size": 4, "shuffle": True},
    {"batch_sampler": [[0, 1], [2]]}, {"sampler": [1, 2, 3], "batch_size": 2},
])
def test_loader_len_and_batch_shapes_match_torch(kwargs):
    torch = pytest.importorskip("torch")
    data = np.arange(14, dtype=np.float32).reshape(7, 2)
    ours = DataLoader(TensorDataset(tg.from_numpy(data)), **kwargs)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(data)), **kwargs)
    assert len(ours) == len(theirs)
    assert [_structure(b) for b in ours] == [_structure(b, torch) for b in theirs]
    if not kwargs.get("shuffle"):
        assert [b[0].tolist() for b in ours] == [b[0].tolist() for b in theirs]


# ------------------------------------------------------------------------------------------ linalg-optim block
def test_weighted_random_sampler_draws_pytorchs_indices():
    from tracegrad.utils.data import WeightedRandomSampler

    weights = [0.1, 0.9, 0.0, 0.5, 2.0]
    s = WeightedRandomSampler(weights, 12, generator=tg.Generator().manual_seed(4))
    draws = list(s)
    assert len(s) == 12 and len(draws) == 12 and 2 not in draws and s.weights.dtype is tg.float64
    unique = list(WeightedRandomSampler(weights, 4, replacement=False, generator=tg.Generator().manual_seed(4)))
    assert sorted(unique) == [0, 1, 3, 4]
    for bad, message in [(dict(num_samples=0), "num_samples should be a positive integer value, but got "
                                               "num_samples=0"),
                         (dict(num_samples=True), "num_samples should be a positive integer value"),
                         (dict(num_samples=3, replacement=1), "replacement should be a boolean value, but got "
                                                              "replacement=1"),
                         (dict(weights=[[1.0, 2.0]], num_samples=3), "weights should be a 1d sequence but given "
                                                                     "weights have shape (1, 2)")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            WeightedRandomSampler(**{"weights": weights, **bad})
    expected = list(WeightedRandomSampler(weights, 8, generator=tg.Generator().manual_seed(5)))
    loader = DataLoader(TensorDataset(tg.arange(5.0)), batch_size=4,
                        sampler=WeightedRandomSampler(weights, 8, generator=tg.Generator().manual_seed(5)))
    assert [v for batch in loader for v in batch[0].tolist()] == [float(i) for i in expected]
    torch = pytest.importorskip("torch")
    for replacement, n in ((True, 12), (False, 4)):
        theirs = torch.utils.data.WeightedRandomSampler(weights, n, replacement,
                                                        generator=torch.Generator().manual_seed(4))
        ours = WeightedRandomSampler(weights, n, replacement, generator=tg.Generator().manual_seed(4))
        assert list(ours) == list(theirs) and list(ours) == list(theirs)  # and the next epoch's too
