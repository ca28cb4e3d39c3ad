"""RowAdam: torch.optim.SparseAdam's update on a batch's rows, in a form a CUDA graph replays."""

import pytest
import torch

from cryonb.core.row_adam import RowAdam, rows

BATCHES = [[3, 0, 7], [1, 3, 5], [7, 2, 0], [4, 6, 1]]


def _tables(seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(8, 3, generator=g)
    sparse, dense = torch.nn.Embedding(8, 3, sparse=True), torch.nn.Embedding(8, 3)
    with torch.no_grad():
        sparse.weight.copy_(weight)
        dense.weight.copy_(weight)
    return sparse, dense


def _loss(rows_of_batch, step):
    target = torch.linspace(-1, 1, rows_of_batch.numel()).view_as(rows_of_batch) * (step + 1)
    return (rows_of_batch - target).pow(2).sum()


def _step(optimizer, table, batch, step, dense):
    idx = torch.tensor(batch)
    optimizer.zero_grad()
    _loss(rows(table, idx) if dense else table(idx), step).backward()
    optimizer.step(idx) if dense else optimizer.step()


def test_the_update_is_sparse_adams_and_leaves_other_rows_alone():
    sparse, dense = _tables()
    reference = torch.optim.SparseAdam(sparse.parameters(), lr=0.05)
    ours = RowAdam([{"params": [dense.weight], "lr": 0.05}])
    for step, batch in enumerate(BATCHES):
        before = dense.weight.detach().clone()
        _step(reference, sparse, batch, step, dense=False)
        _step(ours, dense, batch, step, dense=True)
        assert torch.allclose(dense.weight, sparse.weight, rtol=1e-5, atol=1e-6), step  # float32 rounding: lerp, not subtract-and-scale
        others = [i for i in range(8) if i not in batch]
        assert torch.equal(dense.weight[others], before[others])  # no momentum carries an absent row
        assert not torch.equal(dense.weight[batch], before[batch])
    state = ours.state[dense.weight]
    assert float(state["step"]) == len(BATCHES) == reference.state[sparse.weight]["step"]
    assert torch.allclose(state["exp_avg_sq"], reference.state[sparse.weight]["exp_avg_sq"], rtol=1e-6)


def test_a_rate_of_zero_holds_the_rows_and_a_new_rate_is_read_in_place():
    _, dense = _tables()
    ours = RowAdam([{"params": [dense.weight], "lr": 0.05}])
    rate = ours.param_groups[0]["lr"]
    ours.set_lr(ours.param_groups[0], 0.0)
    before = dense.weight.detach().clone()
    _step(ours, dense, BATCHES[0], 0, dense=True)
    assert torch.equal(dense.weight, before) and ours.param_groups[0]["lr"] is rate
    assert ours.state[dense.weight]["exp_avg"][BATCHES[0]].abs().sum() > 0  # the moments moved, as SparseAdam's do


def test_sparse_adams_state_dict_is_read_and_continues_the_same():
    """A checkpoint written with torch.optim.SparseAdam (before RowAdam) continues as it would have."""
    sparse, dense = _tables()
    reference = torch.optim.SparseAdam(sparse.parameters(), lr=0.05)
    for step, batch in enumerate(BATCHES[:2]):
        _step(reference, sparse, batch, step, dense=False)
    with torch.no_grad():
        dense.weight.copy_(sparse.weight)
    ours = RowAdam([{"params": [dense.weight], "lr": 1.0}])
    ours.load_state_dict(reference.state_dict())
    assert float(ours.param_groups[0]["lr"]) == pytest.approx(0.05)
    for step, batch in enumerate(BATCHES[2:], start=2):
        _step(reference, sparse, batch, step, dense=False)
        _step(ours, dense, batch, step, dense=True)
    assert torch.allclose(dense.weight, sparse.weight, rtol=1e-5, atol=1e-6)


def test_its_own_state_dict_round_trips_in_place():
    _, dense = _tables()
    ours = RowAdam([{"params": [dense.weight], "lr": 0.05}])
    for step, batch in enumerate(BATCHES[:2]):
        _step(ours, dense, batch, step, dense=True)
    saved = ours.state_dict()
    assert isinstance(saved["param_groups"][0]["lr"], float)
    _, other = _tables()
    again = RowAdam([{"params": [other.weight], "lr": 1.0}])
    held = again.state[other.weight]["exp_avg"]
    again.load_state_dict(saved)
    assert again.state[other.weight]["exp_avg"] is held  # in place: a captured step holds these tensors
    for key, value in ours.state[dense.weight].items():
        assert torch.equal(again.state[other.weight][key], value), key
    with pytest.raises(ValueError, match="other parameter groups"):
        RowAdam([{"params": [other.weight], "lr": 1.0}, {"params": [dense.weight], "lr": 1.0}]).load_state_dict(saved)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("sources", [dict(latents="table"), dict(zdim=0, poses="table", pose_lr=3e-3),
                                     dict(latents="table", march_epochs=2, march_start=0.5)])  # a new graph per radius
def test_a_captured_step_with_tables_computes_the_eager_one(sources):
    from cryonb.core.simulate import simulate
    from cryonb.core.training import Trainer, TrainConfig

    particles = simulate("hinge", 16 * 6 + 5, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles  # a short last batch: both paths
    config = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, device="cuda", amp=False)
    runs = [Trainer(particles, TrainConfig(**{**config, **sources}, cuda_graphs=graphs)).fit(2, progress=False)
            for graphs in (False, True)]
    assert len(runs[1]._captured) == 1 and not runs[0]._captured  # one graph held: the current radius's
    eager, captured = ([s[1] for s in t.steps] for t in runs)
    assert torch.allclose(torch.tensor(captured), torch.tensor(eager), rtol=1e-4)
    for (name, p), q in zip(runs[0].model.named_parameters(), runs[1].model.parameters()):
        assert torch.allclose(p, q, rtol=1e-3, atol=1e-5), name
