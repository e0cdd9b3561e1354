"""Pure planning: the tile grid, per-tile seeds and the plan summary."""

from qdist.planning.plan import Plan, Tile, make_plan

__all__ = ["Plan", "Tile", "make_plan"]
