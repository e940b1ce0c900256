from __future__ import annotations

import numpy as np
import pytest

from sne_plugin.errors import SNEError
from sne_plugin.research.bench.tasks import PROFILES, ZooCache, select_tasks, split_indices


@pytest.mark.parametrize("n", [5, 20, 321])
def test_split_disjoint_complete_deterministic(n: int) -> None:
    tr, te = split_indices(n, seed=3)
    assert not set(tr) & set(te)
    assert sorted(np.concatenate([tr, te])) == list(range(n))
    assert len(tr) == round(0.8 * n)
    tr2, te2 = split_indices(n, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert not np.array_equal(split_indices(n, seed=4)[0], tr) or n < 6


def test_unknown_task_and_profile_suggest() -> None:
    with pytest.raises(SNEError, match="unknown task 'in_dst'; did you mean 'in_dist'"):
        select_tasks("small", ["in_dst"])
    with pytest.raises(SNEError, match="unknown profile 'smal'; did you mean 'small'"):
        select_tasks("smal")


def test_every_profile_has_the_four_kinds() -> None:
    for tasks in PROFILES.values():
        assert {t.kind for t in tasks} == {"in_dist", "cross_dataset", "cross_arch", "early"}


@pytest.mark.parametrize("name", ["in_dist", "early_e1"])
def test_split_tasks_are_disjoint_and_deterministic(zoo_cache: ZooCache, name: str) -> None:
    task = select_tasks("smoke", [name])[0]
    a, b = task.load(zoo_cache, 0), task.load(zoo_cache, 0)
    ids_tr = [n.meta["id"] for n in a.X_train]
    ids_te = [n.meta["id"] for n in a.X_test]
    assert not set(ids_tr) & set(ids_te)
    assert ids_tr == [n.meta["id"] for n in b.X_train]
    assert len(a.y_train) == len(a.X_train) == len(a.H_train) == len(a.curve_train)
    assert a.H_train.shape[1] == a.H_test.shape[1] and a.same_arch


def test_early_task_side_info(zoo_cache: ZooCache) -> None:
    data = select_tasks("smoke", ["early_e1"])[0].load(zoo_cache, 0)
    assert all(n.meta["epoch"] == 1 for n in data.X_train)
    final = select_tasks("smoke", ["in_dist"])[0].load(zoo_cache, 0)
    assert np.array_equal(final.y_test, data.y_test)
    assert np.array_equal(final.curve_test, final.y_test)


def test_cross_tasks(zoo_cache: ZooCache) -> None:
    cross = select_tasks("smoke", ["cross_arch_mlp_d1"])[0].load(zoo_cache, 1)
    assert not cross.same_arch
    assert len(cross.X_test) == 20 and len(cross.X_train) == 16
    ds = select_tasks("smoke", ["cross_dataset_font_digits"])[0].load(zoo_cache, 1)
    assert ds.same_arch and len(ds.X_test) == 20
