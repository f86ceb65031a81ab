"""Experiments: the study as one resumable plan of jobs (`hmx-mlx replicate`).

``plan`` (the experiment folder and its jobs), ``pairing`` (which checkpoint of each run,
forward and reverse paired at matched KL), ``jobs`` (what each job does), ``runner`` (the
loop, the lock, the progress file), ``commands`` (the click command).
"""
