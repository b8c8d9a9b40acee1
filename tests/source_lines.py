"""Where a test's own lines are: tests that check error messages and printouts naming the user's line use it."""


def marker_line(path: str, marker: str) -> int:
    """The number of the line in `path` that ends with the comment ``# <marker>``."""
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return number
    raise AssertionError(f"marker {marker!r} not found in {path}")
