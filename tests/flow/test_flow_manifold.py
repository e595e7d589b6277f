"""Manifold projection: LLE weights and the per-class nearest-neighbour projection."""

from __future__ import annotations

import pytest
import torch

from flowvq_cli.flow import lle_weights, project


def test_lle_weights_sum_to_one():
    w = lle_weights(torch.randn(10, 6), torch.randn(10, 4, 6))
    torch.testing.assert_close(w.sum(-1), torch.ones(10))


def test_lle_reconstructs_a_point_in_the_affine_span():
    neighbours = torch.randn(5, 4, 8)  # k = 4 affinely independent points in 8 dims
    true_w = torch.softmax(torch.randn(5, 4), dim=-1) * 1.5 - 0.125  # sums to 1, some weights negative
    z = (true_w.unsqueeze(-1) * neighbours).sum(1)
    w = lle_weights(z, neighbours, reg=1e-12)
    torch.testing.assert_close(w, true_w, atol=1e-6, rtol=0)
    torch.testing.assert_close((w.unsqueeze(-1) * neighbours).sum(1), z, atol=1e-6, rtol=0)


def test_lle_handles_a_query_on_a_neighbour_and_more_neighbours_than_dims():
    neighbours = torch.randn(1, 6, 2)  # k > D: singular Gram matrix without the regulariser
    w = lle_weights(neighbours[:, 0], neighbours)
    assert torch.isfinite(w).all()
    torch.testing.assert_close((w.unsqueeze(-1) * neighbours).sum(1), neighbours[:, 0], atol=1e-2, rtol=0)


def test_projection_uses_only_the_query_class():
    bank = torch.cat([torch.randn(50, 3), torch.randn(50, 3) + 100.0])
    bank_labels = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    z = torch.randn(20, 3) + 50.0  # halfway between the classes
    labels = torch.tensor([0, 1] * 10)
    out = project(z, labels, bank, bank_labels, k=5, chunk=3)
    assert (out[labels == 0].norm(dim=-1) < 20).all() and (out[labels == 1].mean(-1) > 80).all()


def test_projection_is_idempotent_on_the_bank_itself():
    bank = torch.randn(30, 4)
    out = project(bank[:7], torch.zeros(7).long(), bank, torch.zeros(30).long(), k=1)
    torch.testing.assert_close(out, bank[:7])


def test_projection_needs_bank_entries_for_the_class():
    with pytest.raises(ValueError, match="class 2"):
        project(torch.randn(2, 3), torch.tensor([2, 2]), torch.randn(5, 3), torch.zeros(5).long(), k=2)
