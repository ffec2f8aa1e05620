"""``laionet_models``: expand model specs through the registry for ``pytest.mark.parametrize``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["laionet_models"]


def laionet_models(*specs: str, exclude: Iterable[str] = ()) -> list[str]:
    """Model names a spec list expands to (wildcards, ``@file``, ``all``), for parametrizing tests.

    Example::

        @pytest.mark.parametrize("model", laionet_models("convnext_*", exclude=["*_384*"]))
        @pytest.mark.laionet(max_gap=0.1)
        def test_convnext_gap(model): ...
    """
    from ..models.registry import expand_model_specs

    return list(expand_model_specs(list(specs), exclude=tuple(exclude)))
