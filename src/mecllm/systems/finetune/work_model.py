"""What a user's and a server's training costs in FLOPs, as a function of the split phi.

Two work models (docs/finetune.md section 12):

- ``paper`` (the default): ``t_n phi d_n e_n`` FLOPs on the user and ``t_n (1 - phi) d_n e_m``
  on the server, linear in the share each side trains (``t_n = 6 x tokens``).
- ``profiled``: measured for the model ``mecllm train`` runs (``mecllm profile``). Training
  any adapter costs the frozen model's forward pass and a backward pass down to the lowest
  trained block, so each side pays a fixed amount as soon as it trains anything, plus a part
  that grows with its share:

  ``user(phi)   = e_n tokens_n (a_u + b_u phi)``         for phi > 0, else 0;
  ``server(phi) = e_m tokens_n (a_s + b_s (1 - phi))``   for phi < 1, else 0.

Both are the same four coefficient arrays per user and epoch (:class:`WorkCoefficients`):
the paper model is the case ``a_u = a_s = 0``, ``b_u = b_s = t_n d_n``. The solvers' linear
steps use the *chord* ``(a + b) x share``, exact at phi = 0 and phi = 1 and below the true
work in between (so a bound computed with it stays a bound); the physics and the resource
split use the exact work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mecllm.core import checks
from mecllm.core.arrays import FloatArray
from mecllm.core.conditions import Conditions

WorkModelName = Literal["paper", "profiled"]
WORK_MODELS: tuple[WorkModelName, ...] = ("paper", "profiled")

_PROFILE_FIELDS = {
    "task",
    "tokens_per_epoch",
    "user_fixed_flops_per_token",
    "user_flops_per_token_per_phi",
    "server_fixed_flops_per_token",
    "server_flops_per_token_per_share",
    "machine_flops_per_s",
    "conditions",
    "blocks",
    "seq_len",
    "batch",
    "bottleneck",
    "user_flops_per_token_by_split",
    "server_flops_per_token_by_split",
    "split_block_flops_per_token",
    "split_embeddings_flops_per_token",
}
_MAX_FLOPS_PER_TOKEN = 1e18
_MAX_TOKENS = 1e15


@dataclass(frozen=True, eq=False)
class Profile:
    """A profiled model's costs and the run's data sizes (``mecllm profile``'s cost file).

    Attributes
    ----------
    tokens_per_epoch : (N,) float
        Tokens each user's data holds (one epoch), also what the server trains on.
    user_fixed_flops_per_token, user_flops_per_token_per_phi : float, FLOP/token
        ``a_u`` and ``b_u``: a user that trains anything pays ``a_u + b_u phi`` per token.
    server_fixed_flops_per_token, server_flops_per_token_per_share : float, FLOP/token
        ``a_s`` and ``b_s``: a server that trains anything pays ``a_s + b_s (1 - phi)``.
    machine_flops_per_s : float, FLOP/s
        The profiled speed of one thread of the machine the costs were measured on.
    blocks, seq_len, batch, bottleneck : int
        The model's blocks L, the padded sequence length, the batch and adapter sizes.
    user_flops_per_token_by_split, server_flops_per_token_by_split : (L + 1,) float
        The measured FLOPs per token of each side for every split k = 0..L (the fit's data).
    """

    tokens_per_epoch: FloatArray
    user_fixed_flops_per_token: float
    user_flops_per_token_per_phi: float
    server_fixed_flops_per_token: float
    server_flops_per_token_per_share: float
    machine_flops_per_s: float
    blocks: int
    seq_len: int
    batch: int
    bottleneck: int
    user_flops_per_token_by_split: tuple[float, ...]
    server_flops_per_token_by_split: tuple[float, ...]
    #: Split mode (if profiled): one block and the embeddings trained whole, forward, backward
    #: and the optimiser's update, per token, as FLOP-equivalents (measured seconds x
    #: ``machine_flops_per_s``: the update and the embedding gradient are memory work that
    #: PyTorch's FLOP counter does not count).
    split_block_flops_per_token: float | None = None
    split_embeddings_flops_per_token: float | None = None
    #: Where and under what load the profile was measured (``mecllm train`` compares its own).
    conditions: Conditions | None = None
    #: What the profiled model learns: ``text`` or ``csi`` (``mecllm train`` runs that task).
    task: str = "text"

    def to_dict(self) -> dict[str, Any]:
        """The ``profile`` section of an instance file."""
        return (
            {
                "tokens_per_epoch": [float(v) for v in self.tokens_per_epoch],
                "user_fixed_flops_per_token": self.user_fixed_flops_per_token,
                "user_flops_per_token_per_phi": self.user_flops_per_token_per_phi,
                "server_fixed_flops_per_token": self.server_fixed_flops_per_token,
                "server_flops_per_token_per_share": self.server_flops_per_token_per_share,
                "machine_flops_per_s": self.machine_flops_per_s,
                "blocks": self.blocks,
                "seq_len": self.seq_len,
                "batch": self.batch,
                "bottleneck": self.bottleneck,
                "user_flops_per_token_by_split": list(self.user_flops_per_token_by_split),
                "server_flops_per_token_by_split": list(self.server_flops_per_token_by_split),
            }
            | {
                key: value
                for key, value in (
                    ("split_block_flops_per_token", self.split_block_flops_per_token),
                    ("split_embeddings_flops_per_token", self.split_embeddings_flops_per_token),
                )
                if value is not None
            }
            | ({"conditions": self.conditions.to_dict()} if self.conditions else {})
            | ({"task": self.task} if self.task != "text" else {})
        )

    @classmethod
    def from_dict(cls, data: object, n_users: int) -> Profile:
        """Validate a ``profile`` section (N users); raises InvalidInputError naming the field."""
        if not isinstance(data, Mapping):
            raise checks.fail("profile", "must be a JSON object", type(data).__name__)
        checks.reject_unknown(data, _PROFILE_FIELDS, "profile")
        tokens = checks.vector(
            data, "tokens_per_epoch", "profile", n_users, low=0, high=_MAX_TOKENS, floor=1.0
        )

        def flops(key: str) -> float:
            return checks.scalar(
                data, key, "profile", low=0, low_inclusive=True, high=_MAX_FLOPS_PER_TOKEN
            )

        def whole(key: str, low: int) -> int:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise checks.fail(f"profile.{key}", f"must be a whole number >= {low}", value)
            return value

        blocks = whole("blocks", 1)
        by_split = []
        for key in ("user_flops_per_token_by_split", "server_flops_per_token_by_split"):
            values = checks.vector(
                data,
                key,
                "profile",
                blocks + 1,
                low=0,
                low_inclusive=True,
                high=_MAX_FLOPS_PER_TOKEN,
            )
            by_split.append(tuple(float(v) for v in values))
        return cls(
            tokens_per_epoch=tokens,
            user_fixed_flops_per_token=flops("user_fixed_flops_per_token"),
            user_flops_per_token_per_phi=flops("user_flops_per_token_per_phi"),
            server_fixed_flops_per_token=flops("server_fixed_flops_per_token"),
            server_flops_per_token_per_share=flops("server_flops_per_token_per_share"),
            machine_flops_per_s=checks.scalar(
                data, "machine_flops_per_s", "profile", low=0, high=1e21
            ),
            blocks=blocks,
            seq_len=whole("seq_len", 1),
            batch=whole("batch", 1),
            bottleneck=whole("bottleneck", 1),
            user_flops_per_token_by_split=by_split[0],
            server_flops_per_token_by_split=by_split[1],
            split_block_flops_per_token=(
                flops("split_block_flops_per_token")
                if "split_block_flops_per_token" in data
                else None
            ),
            split_embeddings_flops_per_token=(
                flops("split_embeddings_flops_per_token")
                if "split_embeddings_flops_per_token" in data
                else None
            ),
            conditions=(
                Conditions.from_dict(data["conditions"], "profile.conditions")
                if "conditions" in data
                else None
            ),
            task=_task(data.get("task", "text"), "profile.task"),
        )


@dataclass(frozen=True)
class WorkCoefficients:
    """FLOPs per epoch of every user's work on each side (all (N,), FLOP).

    ``user_fixed + user_slope phi`` on the user when phi > 0 (0 at phi = 0);
    ``server_fixed + server_slope (1 - phi)`` on the server when phi < 1 (0 at phi = 1).
    """

    user_fixed: FloatArray
    user_slope: FloatArray
    server_fixed: FloatArray
    server_slope: FloatArray
    #: The paper model's ``(t_n, d_n)``: its work is computed as ``t phi d``, in the order the
    #: recorded regression figures were made with (a last-bit change steers the paper's
    #: DASHF, whose conic steps are ill-conditioned, to another plan).
    paper_factors: tuple[FloatArray, FloatArray] | None = None

    def __post_init__(self) -> None:
        for name in ("user_fixed", "user_slope", "server_fixed", "server_slope"):
            value = np.array(getattr(self, name), dtype=float)
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def user_chord(self) -> FloatArray:
        """(N,) FLOPs per epoch of the whole adapter on the user (the linear steps' slope)."""
        out: FloatArray = self.user_fixed + self.user_slope
        return out

    @property
    def server_chord(self) -> FloatArray:
        """(N,) FLOPs per epoch of the whole adapter on the server."""
        out: FloatArray = self.server_fixed + self.server_slope
        return out

    @property
    def linear(self) -> bool:
        """True when the work is linear in phi (no fixed parts: the paper's model)."""
        return not (np.any(self.user_fixed) or np.any(self.server_fixed))

    def user_work(self, users: Any, phi: Any) -> FloatArray:
        """FLOPs per epoch of ``users`` training a share ``phi`` (arrays alike)."""
        phi = np.asarray(phi, dtype=float)
        if self.paper_factors is not None:
            t, d = self.paper_factors
            linear: FloatArray = t[users] * phi * d[users]
            return linear
        out: FloatArray = np.where(
            phi > 0.0, self.user_fixed[users] + self.user_slope[users] * phi, 0.0
        )
        return out

    def server_work(self, users: Any, phi: Any) -> FloatArray:
        """FLOPs per epoch a server spends on ``users`` whose own share is ``phi``."""
        phi = np.asarray(phi, dtype=float)
        if self.paper_factors is not None:
            t, d = self.paper_factors
            linear: FloatArray = t[users] * (1.0 - phi) * d[users]
            return linear
        out: FloatArray = np.where(
            phi < 1.0, self.server_fixed[users] + self.server_slope[users] * (1.0 - phi), 0.0
        )
        return out


def paper_coefficients(flops_per_param: FloatArray, adapter_params: FloatArray) -> WorkCoefficients:
    """The paper's model: ``t_n d_n`` per epoch on either side, nothing fixed."""
    slope = flops_per_param * adapter_params
    zero = np.zeros_like(slope)
    return WorkCoefficients(zero, slope, zero, slope, (flops_per_param, adapter_params))


def profiled_coefficients(profile: Profile) -> WorkCoefficients:
    """The profiled model's coefficients: per-token costs times each user's tokens."""
    tokens = profile.tokens_per_epoch
    return WorkCoefficients(
        user_fixed=tokens * profile.user_fixed_flops_per_token,
        user_slope=tokens * profile.user_flops_per_token_per_phi,
        server_fixed=tokens * profile.server_fixed_flops_per_token,
        server_slope=tokens * profile.server_flops_per_token_per_share,
    )


def fit_profile(cost: Mapping[str, Any], tokens_per_epoch: FloatArray) -> Profile:
    """Fit the affine-with-steps model to a cost file of ``mecllm profile``.

    Least squares over the measured splits: the user's FLOPs per token at k = 1..L against
    phi = k / L, the server's at k = 0..L-1 against 1 - phi.
    """
    if cost.get("kind") != "train-cost":
        raise checks.fail(
            "cost file kind", "must be 'train-cost' (from `mecllm profile`)", cost.get("kind")
        )
    blocks = int(cost["blocks"])
    tokens_per_step = float(cost["tokens_per_step"])
    steps = sorted(cost["train_steps"], key=lambda s: int(s["split"]))
    if [int(s["split"]) for s in steps] != list(range(blocks + 1)):
        raise checks.fail("cost file train_steps", f"must hold splits 0..{blocks}", len(steps))
    user = np.array([float(s["user"]["flops"]) for s in steps]) / tokens_per_step
    server = np.array([float(s["server"]["flops"]) for s in steps]) / tokens_per_step
    k = np.arange(blocks + 1, dtype=float)
    user_slope, user_fixed = np.polyfit(k[1:] / blocks, user[1:], 1)
    server_slope, server_fixed = np.polyfit(1.0 - k[:-1] / blocks, server[:-1], 1)
    # The machine's speed: measured with the other cores busy, as in a run, when the cost
    # file has it; else the mean over every profiled step, measured alone.
    loaded = cost.get("loaded")
    if isinstance(loaded, Mapping):
        flops, seconds = float(loaded["flops"]), float(loaded["seconds"])
    else:
        flops = sum(float(s[side]["flops"]) for s in steps for side in ("user", "server"))
        seconds = sum(float(s[side]["seconds"]) for s in steps for side in ("user", "server"))
    return Profile(
        tokens_per_epoch=np.asarray(tokens_per_epoch, dtype=float),
        user_fixed_flops_per_token=max(float(user_fixed), 0.0),
        user_flops_per_token_per_phi=max(float(user_slope), 0.0),
        server_fixed_flops_per_token=max(float(server_fixed), 0.0),
        server_flops_per_token_per_share=max(float(server_slope), 0.0),
        machine_flops_per_s=flops / seconds,
        blocks=blocks,
        seq_len=int(cost["seq_len"]),
        batch=int(cost["batch"]),
        bottleneck=int(cost["bottleneck"]),
        user_flops_per_token_by_split=tuple(float(v) for v in user),
        server_flops_per_token_by_split=tuple(float(v) for v in server),
        split_block_flops_per_token=_equivalent(cost, "full_block", flops / seconds),
        split_embeddings_flops_per_token=_equivalent(cost, "embeddings", flops / seconds),
        conditions=(
            Conditions.from_dict(cost["conditions"], "cost file conditions")
            if "conditions" in cost
            else None
        ),
        task=_task(cost.get("task", "text"), "cost file task"),
    )


def _task(value: object, where: str) -> str:
    if value not in ("text", "csi"):
        raise checks.fail(where, "must be 'text' or 'csi'", value)
    return str(value)


def _equivalent(cost: Mapping[str, Any], key: str, machine_flops: float) -> float | None:
    """A profiled unit's measured seconds as FLOPs per token at the machine's speed."""
    unit = cost.get(key)
    if not isinstance(unit, Mapping):
        return None
    return float(unit["seconds"]) * machine_flops / float(cost["tokens_per_step"])
