"""Bridges from scsa's blocks to other libraries' model builders.

Nothing here is imported by ``import scsa``: :mod:`scsa.integrations.ultralytics` imports ultralytics
(AGPL-3.0, installed by the ``yolo`` extra) and is only loaded when asked for by name.
"""

__all__: list[str] = []
