"""Past one machine: the process group (``world``), the few collectives the trainer, the
evaluation and the grid use (``collectives``), and moving a folder's files between ranks
(``transfer``). See docs/distributed.md."""
