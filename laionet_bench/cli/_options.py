"""Options that several subcommands take: one definition each, so a flag means one thing everywhere.

``--ray-address`` names the Ray cluster for ``run``, ``rebuild`` and ``explain`` alike; ``rebuild`` and
``explain`` called it ``--address`` before, which still works for a release, with a warning
(:class:`RenamedFlag`, as ``download --workers`` → ``--concurrency``).
"""

from __future__ import annotations

import argparse
import logging

__all__ = ["RenamedFlag", "add_ray_address", "renamed"]


class RenamedFlag(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and warns once per use.

    Made with :func:`renamed`, which fills in the two spellings and why.
    """

    def __init__(self, *args, new: str = "", why: str = "", **kwargs):
        self.new, self.why = new, why
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        why = f" ({self.why})" if self.why else ""
        logging.getLogger("laionet_bench").warning("%s %s is now %s%s; %s will be removed", parser.prog,
                                                   option_string, self.new, why, option_string)
        setattr(namespace, self.dest, values)


def renamed(group, old: str, new: str, *, dest: str, why: str = "", **kwargs) -> None:
    """Accept ``old`` as a hidden, deprecated spelling of ``new`` (same ``dest``)."""
    group.add_argument(old, dest=dest, action=RenamedFlag, new=new, why=why, help=argparse.SUPPRESS, **kwargs)


def add_ray_address(group, *, old: str | None = None) -> None:
    """``--ray-address ADDR`` into ``args.ray_address``; ``old``: the subcommand's former spelling, still accepted."""
    group.add_argument("--ray-address", metavar="ADDR",
                       help="with --executor ray: the cluster's head, HOST:PORT or auto (default: a local Ray)")
    if old:
        renamed(group, old, "--ray-address", dest="ray_address", metavar="ADDR")
