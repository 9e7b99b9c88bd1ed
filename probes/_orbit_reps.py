"""Representations on a layer's orbit latents, as the orbit averages they define.

An orbit tensor ``H`` of shape ``(n_elements, n_samples, ...)`` holds a layer's output on the
orbit ``g·x`` of a batch.  A representation ``rho`` of the sampled elements makes the layer
exactly equivariant on that orbit when ``H`` is replaced by its orbit average

    ``H̃[g] = rho(g) h̄``,   ``h̄ = (1 / |G|) Σ_k rho(k)⁻¹ H[k]``,

the closest equivariant signal (the Reynolds operator; Haar average for a finite group).
Three representations are used: the trivial one (invariance), the input's own action applied
to the layer (conv feature maps under rot90/flip/cyclic shifts live on the input's grid), and
the affine maps ``z ↦ rho_g z + b_g`` a :class:`probes.LinearProbe` fits to the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["ActionRep", "ChannelRep", "FittedRep", "TrivialRep", "orbit_rep", "whole_finite_orbit"]


def whole_finite_orbit(action: Any) -> bool:
    """Whether ``action``'s orbit runs over every element of a finite group, in order."""
    group = action.group
    if not group.is_finite:
        return False
    values = np.asarray(action.element_values)
    return values.shape == (group.order,) and bool(np.array_equal(values, np.arange(group.order)))


class TrivialRep:
    """``rho(g) = 1``: the orbit average is the mean over the orbit (invariance)."""

    name = "trivial"

    def average(self, H: torch.Tensor) -> torch.Tensor:
        return H.mean(dim=0, keepdim=True).expand_as(H)


class ActionRep:
    """The input's action applied to the layer's tensor (a finite group's whole orbit).

    When the action permutes the entries of the layer's tensor (rot90, flips, cyclic shifts
    of a feature map: checked once on the layer's own values), the orbit average is two
    gathers with precomputed index maps instead of ``2 |G|`` calls of the action.
    """

    name = "input"

    def __init__(self, action: Any) -> None:
        self.action = action
        self.inverses = np.array(action.group.inverses)  # a writable copy (torch indexes it)
        self._maps: dict[tuple[int, ...], torch.Tensor | None] = {}

    def _index_maps(self, H: torch.Tensor) -> torch.Tensor | None:
        """``maps[g]``: the flat source index of each entry of ``g·h`` (one sample), or None
        when the action does not act by permuting the entries of ``H``'s samples."""
        shape = tuple(H.shape[2:])
        if shape not in self._maps:
            size = int(np.prod(shape))
            maps: torch.Tensor | None = None
            if size < 2**24 and H.is_floating_point():
                idx = torch.arange(size, dtype=torch.float64, device=H.device).reshape(1, *shape)
                try:
                    moved = torch.stack([self.action._act(g, idx)[0] for g in range(H.shape[0])])
                    maps = moved.reshape(H.shape[0], size).round().to(torch.int64)
                    ok = torch.equal(maps.sort(dim=1).values, idx.reshape(1, -1).expand_as(maps))
                    probe = H[0, :1]
                    for g in range(H.shape[0]):  # the gather must reproduce the action
                        direct = self.action._act(g, probe).reshape(-1)
                        ok = ok and torch.equal(direct, probe.reshape(-1)[maps[g]])
                    maps = maps if ok else None
                except (ValueError, TypeError, RuntimeError):
                    maps = None
            self._maps[shape] = maps
        return self._maps[shape]

    def average(self, H: torch.Tensor) -> torch.Tensor:
        maps = self._index_maps(H)
        n_el = H.shape[0]
        if maps is not None:
            flat = H.reshape(n_el, H.shape[1], -1)
            # (k⁻¹·H[k])[p] = H[k][inv_map_k[p]] with inv_map_k the map of k⁻¹.
            back = maps[torch.as_tensor(self.inverses, device=H.device)]  # (G, size)
            mean = flat[0].clone()  # the identity's map is the identity
            term = torch.empty_like(mean)
            for k in range(1, n_el):
                mean += torch.index_select(flat[k], 1, back[k], out=term)
            mean /= n_el
            out = torch.empty_like(flat)
            for g in range(n_el):
                torch.index_select(mean, 1, maps[g], out=out[g])
            return out.reshape(H.shape)
        act = self.action._act
        mean = H[0].clone()  # the identity's term; then accumulate, no stacked copy
        for k in range(1, n_el):
            mean += act(int(self.inverses[k]), H[k])
        mean /= n_el
        return self.action._orbit(mean)


class FittedRep:
    """Fitted affine maps ``z(g·x) ≈ rho_g z(x) + b_g`` on the flattened layer.

    ``h̄ = mean_k rho_k⁺ (H[k] − b_k)`` (pseudo-inverse: a fitted map need not be invertible),
    ``H̃[g] = rho_g h̄ + b_g``.  Exactly equivariant under the fitted maps when they form a
    representation; for maps that are only close to one, the closest such signal.
    """

    name = "fitted"

    def __init__(self, H: torch.Tensor, **probe_kwargs: Any) -> None:
        from probes._linear import LinearProbe

        flat = H.reshape(H.shape[0], H.shape[1], -1)
        probe = LinearProbe(
            n_null=0, n_bootstrap=0, dtype=H.dtype, device=H.device, **probe_kwargs
        ).fit(flat)
        self.rho = torch.as_tensor(probe.rho_, dtype=H.dtype, device=H.device)
        self.bias = torch.as_tensor(probe.bias_, dtype=H.dtype, device=H.device)
        self.pinv = torch.linalg.pinv(self.rho)
        self.r2 = np.asarray(probe.r2_)

    def average(self, H: torch.Tensor) -> torch.Tensor:
        flat = H.reshape(H.shape[0], H.shape[1], -1)
        base = torch.einsum("gij,gnj->gni", self.pinv, flat - self.bias[:, None])
        mean = base.mean(dim=0)
        out = torch.einsum("gij,nj->gni", self.rho, mean) + self.bias[:, None]
        return out.reshape(H.shape)


class ChannelRep:
    """The input's action on the layer's grid, composed with fitted channel maps.

    Feature maps often transform as ``h(g·x) ≈ P_g (g·h(x)) + c_g``: the grid moves as the
    input does and the channels are mixed (a flip-augmented CNN's channels come in mirrored
    pairs, Bökman & Kahl 2023).  ``P_g`` (``C x C``) and ``c_g`` are fitted by least squares
    over samples and grid positions (``n H W`` rows for ``C + 1`` unknowns per channel);
    ``r2`` is their in-sample R² per element.  ``h̄ = mean_k k⁻¹·(P_k⁺ (H[k] − c_k))``,
    ``H̃[g] = P_g (g·h̄) + c_g``.
    """

    name = "channels"

    def __init__(self, action: Any, H: torch.Tensor) -> None:
        if H.ndim < 4:
            raise ValueError(
                "channel maps need feature maps (n_samples, channels, *grid); got a layer of "
                f"shape {tuple(H.shape[1:])}"
            )
        self.action = action
        self.inverses = np.asarray(action.group.inverses)
        act = action._act
        moved = torch.stack([act(g, H[0]) for g in range(H.shape[0])])
        c = H.shape[2]
        X = moved.movedim(2, -1).reshape(H.shape[0], -1, c)
        Y = H.movedim(2, -1).reshape(H.shape[0], -1, c)
        ones = torch.ones(*X.shape[:2], 1, dtype=H.dtype, device=H.device)
        coef = torch.linalg.lstsq(torch.cat([X, ones], dim=2), Y).solution  # (G, C+1, C)
        self.P = coef[:, :c].transpose(1, 2)  # (G, C, C): out channel x in channel
        self.c = coef[:, c]
        self.pinv = torch.linalg.pinv(self.P)
        fit = torch.cat([X, ones], dim=2) @ coef
        sse = ((Y - fit) ** 2).sum(dim=(1, 2))
        sst = ((Y - Y.mean(dim=1, keepdim=True)) ** 2).sum(dim=(1, 2))
        self.r2 = (1 - sse / sst.clamp_min(torch.finfo(H.dtype).tiny)).cpu().numpy()

    def _mix(self, M: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,nj...->ni...", M, h)

    def average(self, H: torch.Tensor) -> torch.Tensor:
        act = self.action._act
        shape = (1, -1) + (1,) * (H.ndim - 3)
        mean = torch.zeros_like(H[0])
        for k in range(H.shape[0]):
            local = self._mix(self.pinv[k], H[k] - self.c[k].reshape(shape))
            mean += act(int(self.inverses[k]), local)
        mean /= H.shape[0]
        return torch.stack(
            [
                self._mix(self.P[g], act(g, mean)) + self.c[g].reshape(shape)
                for g in range(H.shape[0])
            ]
        )


def orbit_rep(spec: Any, action: Any, H: torch.Tensor, what: str, **probe_kwargs: Any) -> Any:
    """The representation ``spec`` names for a layer whose orbit tensor is ``H``.

    ``spec``: ``"auto"`` (the input's action where it accepts the layer's tensor, the orbit
    is a whole finite group and the action exact -- an interpolating action's average is not
    exactly equivariant --, else ``"fitted"``), ``"input"``, ``"channels"`` (the input's action
    composed with fitted channel maps, :class:`ChannelRep`), ``"fitted"``, ``"trivial"``, or
    an action of the same group to apply to the layer.
    """
    from latentgeo.actions import Action

    if isinstance(spec, Action):
        if spec.group != action.group or not whole_finite_orbit(spec):
            raise ValueError(
                f"the action given for {what} must act by the whole finite group "
                f"{action.group!r}, got {spec!r}"
            )
        _check_acts(spec, H, what)
        return ActionRep(spec)
    if not isinstance(spec, str) or spec not in (
        "auto",
        "input",
        "channels",
        "fitted",
        "trivial",
    ):
        raise ValueError(
            f"the representation for {what} must be 'auto', 'input', 'channels', 'fitted', "
            f"'trivial' or an Action, got {spec!r}"
        )
    if spec == "trivial":
        return TrivialRep()
    if spec == "fitted":
        return FittedRep(H, **probe_kwargs)
    whole = whole_finite_orbit(action)
    if spec in ("input", "channels"):
        if not whole:
            raise ValueError(
                f"'input' for {what} needs an action over a whole finite group's orbit; "
                f"{action!r} samples its elements: use 'fitted'"
            )
        _check_acts(action, H, what)
        return ActionRep(action) if spec == "input" else ChannelRep(action, H)
    if whole and action.exact:
        try:
            action._validate(H[0])
        except (ValueError, TypeError):
            return FittedRep(H, **probe_kwargs)
        return ActionRep(action)
    return FittedRep(H, **probe_kwargs)


def _check_acts(action: Any, H: torch.Tensor, what: str) -> None:
    try:
        action._validate(H[0])
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{action!r} cannot act on {what}'s output of shape {tuple(H.shape[1:])}: {err}"
        ) from None
