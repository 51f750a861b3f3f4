"""Tools built on the library: the complexity report (:mod:`scsa.tools.profile`), demos, export.

Submodules are imported on use so that ``import scsa`` stays light.
"""
