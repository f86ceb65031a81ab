"""hmxfeel_mlx: reproduce HMX-feel (self-rewarded rubric GRPO for human-like
expressions of feeling) on MLX, with its machine-like control and a broad evaluation."""

__version__ = "0.1.0"
