"""The terminal UI: live training dashboard, sample inspector and report (Rich).

Everything shown is read from run folders (``state``), so it works on a finished
run or on one another process is still writing. Renderers are pure functions
from state to Rich renderables; none of these modules imports MLX.
"""
