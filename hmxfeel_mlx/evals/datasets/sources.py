"""Where `hmx-mlx eval` finds each axis's data, in this order:

1. ``--data-dir DIR``: a folder in the shared layout (bbq/, mmlu/, ...), for every axis;
2. ``$HMX_MLX_DATA``: the same, from the environment;
3. the Hugging Face cache filled by `hmx-mlx data pull`, per benchmark at its pinned
   revision (``hub``); a benchmark not cached yet is downloaded first unless
   huggingface-hub is offline (``HF_HUB_OFFLINE=1``). A benchmark with no Hub copy
   (BigToM) is read from its upstream file in ``hub.local_dir()``.

For the Hub, the loaders get a temporary folder in the shared layout whose
``<benchmark>/<file name>`` entries link to the verified cached files, so every
axis reads its folder as it reads ``--data-dir``. Nothing is read before every
needed benchmark has passed its hash checks. The result file records each
axis's source (``data_sources``: dataset id, revision and commit, or the folder)
and the sha256 of every file (``data_files``, named ``<dataset id>/<path>``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ...errors import HmxError
from .hub import BenchmarkState, HubUnreachable, describe_missing, for_axis, inspect, load_benchmarks, offline, pull

DATA_ENV = "HMX_MLX_DATA"  # environment variable naming a benchmark data folder


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The benchmark data folder: ``data_dir`` (``--data-dir``), else ``$HMX_MLX_DATA``; None = the Hub cache."""
    for value, what in ((data_dir, "--data-dir"), (os.environ.get(DATA_ENV) or None, f"${DATA_ENV}")):
        if value is None:
            continue
        path = Path(value).expanduser()
        if not path.is_dir():
            raise HmxError(f"{what} {path} is not a folder. Pass the folder holding bbq/, mmlu/, gsm8k/, ... "
                           "or leave it out to use the Hugging Face cache (hmx-mlx data pull).")
        return path
    return None


@dataclass
class HubData:
    """The benchmarks the selected axes read, each checked and ready in the Hugging Face cache."""

    states: dict[str, BenchmarkState] = field(default_factory=dict)  # benchmark name -> state
    axes: dict[str, list[str]] = field(default_factory=dict)  # axis -> benchmark names

    def file_hashes(self, axis: str) -> dict[str, str]:
        """``<dataset id or upstream repo>/<path>`` -> sha256 of every file ``axis`` reads."""
        out = {}
        for name in self.axes.get(axis, []):
            st = self.states[name]
            b = st.benchmark
            for f in st.files:
                up = st.source == "upstream"
                out[f"{b.upstream.repo}/{b.upstream.path}" if up else f"{b.dataset}/{f.file.path}"] = f.sha256
        return out

    def provenance(self) -> dict[str, list[dict]]:
        return {axis: [self.states[n].provenance() for n in names] for axis, names in self.axes.items()}

    @contextmanager
    def view(self) -> Iterator[Path]:
        """A temporary folder in the shared layout: <benchmark>/<file name> -> the cached file."""
        with tempfile.TemporaryDirectory(prefix="hmx-data-") as tmp:
            root = Path(tmp)
            for name, st in self.states.items():
                (root / name).mkdir()
                for f in st.files:
                    link = root / name / f.file.name
                    try:
                        link.symlink_to(Path(f.local).resolve())
                    except OSError:  # no symlinks on this filesystem: copy
                        shutil.copyfile(f.local, link)
            yield root


def hub_data(axes: Sequence[str], revision_file: str | Path | None = None, endpoint: str | None = None) -> HubData:
    """Every benchmark ``axes`` read, from the Hugging Face cache (downloaded first when online).

    HmxError, one line naming the axis, the dataset and the command that fetches it,
    when a benchmark is missing and cannot be downloaded, or fails its hash checks.
    """
    benchmarks = load_benchmarks(revision_file)
    out = HubData()
    for axis in axes:
        out.axes[axis] = []
        for bench in for_axis(axis, benchmarks):
            out.axes[axis].append(bench.name)
            if bench.name in out.states:
                continue
            state = inspect(bench)
            if not state.ready:
                if offline() or bench.dataset is None or any(f.problem for f in state.files if f.local):
                    raise HmxError(describe_missing(bench, state, axis))
                try:
                    state = pull(bench, endpoint=endpoint)
                except HubUnreachable as e:
                    raise HmxError(f"{axis}: {bench.label()} is not in the Hugging Face cache and the Hub cannot "
                                   f"be reached ({e.reason}). Fetch it with `hmx-mlx data pull {axis}` when "
                                   "online, or pass --data-dir DIR.") from None
                except HmxError as e:
                    raise HmxError(e.message if e.message.startswith(f"{axis}:") else f"{axis}: {e.message}") from None
            out.states[bench.name] = state
    return out
