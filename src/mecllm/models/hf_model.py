"""Any local model directory as an adapted encoder: Hugging Face ``transformers`` loads it,
``peft`` puts LoRA adapters in it (``mecllm train --model-dir DIR``; the ``[hf]`` extra).

Nothing is downloaded: the directory must hold the config, the weights and the tokenizer
(``save_pretrained``'s layout), and everything is loaded with ``local_files_only``.

How the contract of :class:`mecllm.models.encoder.AdaptedEncoder` is kept without knowing the
architecture:

- **Blocks**: the model's ``nn.ModuleList`` with ``num_hidden_layers`` entries (BERT's
  ``encoder.layer``, Llama's ``layers``, GPT-2's ``h``, ...).
- **Adapters**: ``peft`` LoRA (rank = the run's bottleneck, no dropout) on the modules ``peft``
  targets by default for the architecture, else on every linear layer. ``B`` starts at zero, so
  before training the adapted model is the frozen model, as with the hand-written adapters.
- **Where a parameter sits**: block ``i`` if its name is under the blocks' list; otherwise
  before or after the blocks by the order the model runs its modules (found once, on a probe
  forward pass): the embeddings before, final norms and poolers after.
- **Cutting at ``k``** (split mode): :meth:`HFAdapted.bottom` runs the model's own forward pass
  and stops it at the input of block ``k`` (or the output of the last block); :meth:`HFAdapted.
  last_hidden` runs it with the blocks' list replaced by an injector of the received hidden
  state followed by blocks ``[k, L)``, so the model still builds its masks and position
  encodings itself. The embeddings then run on placeholder inputs (a lookup, no gradient) and
  their output is discarded.
- **Pooling**: the mean of ``last_hidden_state`` over the attended tokens.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mecllm.core.errors import InvalidInputError
from mecllm.models.encoder import AdaptedEncoder, Place

#: Keys of a config that give the number of blocks and the width, by model family.
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
WIDTH_KEYS = ("hidden_size", "n_embd", "d_model", "dim")


def _import_hf() -> tuple[Any, Any]:
    """``transformers`` and ``peft``, quietly, or a clear error."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import peft
        import transformers
    except ImportError as exc:
        raise InvalidInputError(
            "--model-dir needs transformers and peft: pip install -e '.[hf]'"
        ) from exc
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"peft\.")
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return transformers, peft


def read_config(folder: Path) -> dict[str, Any]:
    """The directory's ``config.json`` (no import of ``transformers``), or a clear error."""
    path = folder / "config.json"
    if not path.is_file():
        raise InvalidInputError(
            f"--model-dir {folder}: no config.json there (a model directory as "
            "save_pretrained writes it: config, weights and tokenizer files)"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"--model-dir {folder}: config.json unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError(f"--model-dir {folder}: config.json is not an object")
    return raw


def config_shape(folder: Path) -> tuple[int, int]:
    """``(blocks, width)`` of the model in ``folder``, from its config."""
    raw = read_config(folder)
    blocks = next((raw[k] for k in LAYER_KEYS if isinstance(raw.get(k), int)), None)
    width = next((raw[k] for k in WIDTH_KEYS if isinstance(raw.get(k), int)), None)
    if blocks is None or width is None:
        raise InvalidInputError(
            f"--model-dir {folder}: config.json gives no number of layers ({', '.join(LAYER_KEYS)})"
            f" or no width ({', '.join(WIDTH_KEYS)})"
        )
    return int(blocks), int(width)


class _Cut(Exception):
    """Raised inside the forward pass to stop it at a cut, carrying the hidden state."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__("cut")
        self.hidden = hidden


class _Inject(nn.Module):
    """Stands first in the blocks' list and returns the received hidden state (in the form the
    model's blocks return: a tensor or a tuple headed by one)."""

    def __init__(self, hidden: torch.Tensor, as_tuple: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.as_tuple = as_tuple

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return (self.hidden,) if self.as_tuple else self.hidden


def _hidden_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    hidden = args[0] if args else kwargs.get("hidden_states")
    if not isinstance(hidden, torch.Tensor):
        raise RuntimeError("a block was called without a hidden-state tensor first")
    return hidden


def _first(output: Any) -> torch.Tensor:
    out = output[0] if isinstance(output, tuple) else output
    if not isinstance(out, torch.Tensor):
        raise RuntimeError("a block returned no hidden-state tensor")
    return out


class HFAdapted(AdaptedEncoder):
    """A ``transformers`` model with ``peft`` LoRA adapters and the prototype head."""

    def __init__(self, folder: Path, rank: int, seed: int = 0) -> None:
        super().__init__()
        transformers, peft = _import_hf()
        blocks, width = config_shape(folder)
        torch.manual_seed(seed)
        try:
            base = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(
                f"--model-dir {folder}: transformers cannot load it: {exc}"
            ) from exc
        for p in base.parameters():
            p.requires_grad_(False)
        if getattr(base.config, "use_cache", None):
            base.config.use_cache = False  # training passes: no key/value cache
        try:
            config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0)
            wrapped = peft.get_peft_model(base, config)
            self.targets = "peft's default for the architecture"
        except ValueError:  # no default targets for this architecture
            config = peft.LoraConfig(
                r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear"
            )
            wrapped = peft.get_peft_model(base, config)
            self.targets = "every linear layer"
        self.net = wrapped
        self._blocks_path, self._blocks = self._find_blocks(blocks)
        self._width = width
        self._as_tuple = False
        self._order: dict[str, Place] = {}
        self._probe()

    # ------------------------------------------------------------------ discovery
    def _find_blocks(self, blocks: int) -> tuple[str, nn.ModuleList]:
        found = [
            (name, module)
            for name, module in self.net.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) == blocks
        ]
        if not found:
            raise InvalidInputError(
                f"the model has no list of {blocks} blocks (its config's number of layers)"
            )
        name, module = min(found, key=lambda item: item[0].count("."))
        return name, module

    def _owner(self) -> tuple[nn.Module, str]:
        """The module holding the blocks' list and the list's attribute name."""
        parent, _, attribute = self._blocks_path.rpartition(".")
        return self.net.get_submodule(parent), attribute

    def _probe(self) -> None:
        """One forward pass on two tokens: the blocks' output form and where every parameter
        outside the blocks runs (before or after them)."""
        order: list[str] = []
        started = {"blocks": False}
        handles = []
        prefix = f"net.{self._blocks_path}."
        for name, module in self.named_modules():
            if name.startswith(prefix) or not list(module.parameters(recurse=False)):
                continue

            def note(_m: nn.Module, _a: Any, name: str = name) -> None:
                order.append(("after:" if started["blocks"] else "before:") + name)

            handles.append(module.register_forward_pre_hook(note))

        def first_block(_m: nn.Module, _a: Any) -> None:
            started["blocks"] = True

        def output_form(_m: nn.Module, _a: Any, output: Any) -> None:
            self._as_tuple = isinstance(output, tuple)

        handles.append(self._blocks[0].register_forward_pre_hook(first_block))
        handles.append(self._blocks[-1].register_forward_hook(output_form))
        try:
            with torch.no_grad():
                ids = torch.ones((1, 2), dtype=torch.long)
                self.net(input_ids=ids, attention_mask=torch.ones_like(ids))
        finally:
            for handle in handles:
                handle.remove()
        for entry in order:
            side, _, module = entry.partition(":")
            self._order.setdefault(module, "before" if side == "before" else "after")

    # ------------------------------------------------------------------ the contract
    @property
    def n_blocks(self) -> int:
        return len(self._blocks)

    @property
    def width(self) -> int:
        return self._width

    def block(self, i: int) -> nn.Module:
        module: nn.Module = self._blocks[i]
        return module

    def place(self, name: str) -> Place:
        prefix = f"net.{self._blocks_path}."
        if name.startswith(prefix):
            return int(name[len(prefix) :].split(".")[0])
        module = name.rpartition(".")[0]
        return self._order.get(module, "after")  # never run: nothing flows through it

    def is_adapter(self, name: str) -> bool:
        return ".lora_" in name

    def bottom(self, ids: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        if k < self.n_blocks:

            def stop(_m: nn.Module, args: Any, kwargs: Any) -> None:
                raise _Cut(_hidden_argument(args, kwargs))

            handle = self._blocks[k].register_forward_pre_hook(stop, with_kwargs=True)
        else:

            def stop_after(_m: nn.Module, _a: Any, output: Any) -> None:
                raise _Cut(_first(output))

            handle = self._blocks[-1].register_forward_hook(stop_after)
        try:
            self.net(input_ids=ids, attention_mask=attention)
        except _Cut as cut:
            return cut.hidden
        finally:
            handle.remove()
        raise RuntimeError("the model's forward pass never reached the cut")

    def last_hidden(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        placeholder = torch.zeros(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        with self._blocks_from(k, hidden):
            out = self.net(input_ids=placeholder, attention_mask=attention)
        last: torch.Tensor = out.last_hidden_state
        return last

    @contextmanager
    def _blocks_from(self, k: int, hidden: torch.Tensor) -> Iterator[None]:
        """Blocks ``[k, L)`` run on ``hidden``: at ``k = 0`` the first block's input is replaced
        (a hook); otherwise the blocks' list is replaced by the injector of ``hidden`` and
        blocks ``[k, L)`` (never longer than ``L``: some models run ``layers[:L]``)."""
        if k == 0:

            def replace(_m: nn.Module, args: Any, kwargs: Any) -> tuple[Any, Any]:
                if args:
                    return (hidden, *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": hidden}

            handle = self._blocks[0].register_forward_pre_hook(replace, with_kwargs=True)
            try:
                yield
            finally:
                handle.remove()
            return
        owner, attribute = self._owner()
        replaced = nn.ModuleList([_Inject(hidden, self._as_tuple), *list(self._blocks)[k:]])
        owner._modules[attribute] = replaced
        try:
            yield
        finally:
            owner._modules[attribute] = self._blocks


def load_hf(folder: Path, rank: int, seed: int = 0) -> HFAdapted:
    """The model in ``folder`` with fresh LoRA adapters of rank ``rank`` (seeded)."""
    return HFAdapted(folder, rank, seed)


class HFTokenizer:
    """The directory's tokenizer (``AutoTokenizer``), padded to a fixed length."""

    def __init__(self, folder: Path, max_len: int) -> None:
        transformers, _ = _import_hf()
        try:
            self._tok = transformers.AutoTokenizer.from_pretrained(
                str(folder), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise InvalidInputError(
                f"--model-dir {folder}: no tokenizer it can load: {exc}"
            ) from exc
        if self._tok.pad_token is None:  # decoder models often have none
            self._tok.pad_token = self._tok.eos_token or self._tok.unk_token
        self.max_len = max_len

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, shape (len(texts), max_len)."""
        encoded = self._tok(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
        )
        return encoded["input_ids"], encoded["attention_mask"]
