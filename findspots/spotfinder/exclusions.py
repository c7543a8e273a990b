"""``exclude_images`` and ``exclude_images_multiple``: images whose threshold result is empty.

Excluded images are still read and still occupy a frame, so spots never join through them
(docs/dials-behaviour.md#exclude-images). Experiments are numbered as in the output ``id`` column: one per
rotation sweep, one per image of a still set.
"""

from __future__ import annotations

import re

from findspots.errors import ParameterError


def _ranges(values: list) -> list[str]:
    items = []
    for value in values:
        words = value if isinstance(value, list | tuple) else [value]
        for word in words:
            items += [w for w in re.split(r"[,\s]+", str(word)) if w]
    return items


def rejected_frames(
    exclude_images: list, exclude_multiple: int | None, experiments: list[list[int]]
) -> list[set[int]]:
    """Per experiment, the image numbers to reject.

    ``experiments[e]`` lists experiment e's image numbers. Items are ``exp:start:end`` or, with a
    single experiment, ``start:end``; ranges are inclusive.
    """
    out: list[set[int]] = [set() for _ in experiments]
    for item in _ranges(exclude_images or []):
        parts = item.split(":")
        what = f"spotfinder.exclude_images={item}"
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise ParameterError(f"{what}: expected exp:start:end or start:end (integers)") from None
        if len(numbers) == 2:
            if len(experiments) != 1:
                raise ParameterError(f"{what}: there are {len(experiments)} experiments; give exp:start:end")
            numbers = [0, *numbers]
        if len(numbers) != 3:
            raise ParameterError(f"{what}: expected exp:start:end or start:end")
        exp, start, end = numbers
        if not 0 <= exp < len(experiments):
            raise ParameterError(f"{what}: experiment {exp} does not exist (0..{len(experiments) - 1})")
        if start > end:
            raise ParameterError(f"{what}: start {start} is after end {end}")
        out[exp] |= {n for n in experiments[exp] if start <= n <= end}
    if exclude_multiple:
        for e, numbers in enumerate(experiments):
            out[e] |= {n for n in numbers if n % exclude_multiple == 0}
    return out
