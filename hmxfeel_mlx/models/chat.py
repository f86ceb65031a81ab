"""Single-stream generation for `hmx-mlx generate` and `hmx-mlx chat`.

Prompts go through the model's chat template (Qwen3's thinking mode off);
text streams out as it is decoded. Batched generation for training and
evaluation lives elsewhere; this is the interactive path.

``reply_text`` is how every batched reply becomes text (rollouts, the judge's
verdicts, the evaluation's replies): EOS dropped, and a thinking block removed
the way Qwen3's chat template reads an assistant turn back, so no reasoning text
reaches the reward, the judge or an answer extractor even when a model thinks
although the prompt switched thinking off.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TextIO

from .loading import LoadedModel

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def render_prompt(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The chat-template text for ``messages``; plain concatenation for models without a template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=False, enable_thinking=False
        )
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def strip_thinking(text: str) -> str:
    """``text`` without its reasoning: everything up to the last ``</think>`` (and the newlines
    after it) goes, as Qwen3's template splits an assistant message; an unclosed ``<think>``
    and what follows it go too (a reply cut off while thinking holds no answer yet)."""
    if THINK_CLOSE in text:
        text = text.split(THINK_CLOSE)[-1].lstrip("\n")
    if THINK_OPEN in text:
        text = text.split(THINK_OPEN, 1)[0]
    return text


def reply_text(tokenizer, tokens: list[int]) -> str:
    """A generated reply as text: EOS ids dropped, decoded, thinking stripped."""
    eos = set(tokenizer.eos_token_ids)
    return strip_thinking(tokenizer.decode([t for t in tokens if t not in eos]))


def stream_reply(
    loaded: LoadedModel, messages: list[dict], max_tokens: int = 256, temp: float = 0.0, seed: int | None = None
) -> Iterator[str]:
    """Yield the reply to ``messages`` piece by piece (greedy when temp is 0)."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    if seed is not None:
        mx.random.seed(seed)
    prompt = render_prompt(loaded.tokenizer, messages)
    for response in stream_generate(
        loaded.model, loaded.tokenizer, prompt, max_tokens=max_tokens, sampler=make_sampler(temp=temp)
    ):
        yield response.text


def chat_loop(
    loaded: LoadedModel,
    read_line=input,
    out: TextIO | None = None,
    max_tokens: int = 512,
    temp: float = 0.7,
    system: str | None = None,
) -> list[dict]:
    """Multi-turn chat on the terminal until EOF, `/exit` or `/quit`; `/reset` forgets the history."""
    out = out or sys.stdout  # looked up at call time so redirected output is honoured
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            line = read_line(">>> ")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return messages
        text = line.strip()
        if text in ("/exit", "/quit"):
            return messages
        if text == "/reset":
            messages = messages[:1] if system else []
            out.write("(history cleared)\n")
            continue
        if not text:
            continue
        messages.append({"role": "user", "content": text})
        reply = []
        for piece in stream_reply(loaded, messages, max_tokens=max_tokens, temp=temp):
            reply.append(piece)
            out.write(piece)
            out.flush()
        out.write("\n")
        messages.append({"role": "assistant", "content": "".join(reply)})
