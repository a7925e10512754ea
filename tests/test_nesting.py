"""Chains of thousands of dependent tasks: identity, keys, metadata, repr and pickling work at any depth.

Every expected value here is built by plain string concatenation, so the tests do not depend on the
code under test to compute what a deep chain's key or repr must be.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import labtech_nb
from labtech_nb.cache import PickleCache
from labtech_nb.exceptions import LabError
from labtech_nb.json_text import loads
from labtech_nb.serialization import Serializer
from labtech_nb.types import ResultMeta

#: Deeper than json, repr, pickle and Python's recursion limit could handle by recursion.
DEEP = 3_000


@labtech_nb.task
class Step:
    n: int
    previous: Any = None

    def run(self) -> int:
        return self.n


@labtech_nb.task(code_version="v2")
class Wrapped:
    """Each link holds the one below inside a dict holding a list, as ``{"inputs": [previous]}``."""

    n: int
    previous: dict[str, Any]

    def run(self) -> int:
        return self.n


class FreshSerializer(Serializer):
    """Remembers nothing on tasks, so it serializes every task afresh."""


def step_chain(links: int, bottom: int = 0) -> Step:
    chain = Step(n=bottom)
    for n in range(bottom + 1, bottom + links):
        chain = Step(n=n, previous=chain)
    return chain


def wrapped_chain(links: int) -> Wrapped:
    chain = Wrapped(n=0, previous={})
    for n in range(1, links):
        chain = Wrapped(n=n, previous={"inputs": [chain]})
    return chain


def expected_step_payload(links: int) -> str:
    payload = "null"
    for n in range(links):
        payload = f'{{"_is_task": true, "__class__": "{__name__}.Step", "n": {n}, "previous": {payload}}}'
    return payload


def expected_step_repr(links: int) -> str:
    text = "None"
    for n in range(links):
        text = f"Step(n={n}, previous={text})"
    return text


def test_separately_built_deep_chains_are_equal_and_hash_alike() -> None:
    first, second = step_chain(DEEP), step_chain(DEEP)
    assert first is not second and first == second and hash(first) == hash(second)
    assert len({first, second}) == 1
    assert step_chain(DEEP, bottom=1) != first


def test_the_key_of_a_deep_chain_hashes_labtechs_json_byte_for_byte() -> None:
    chain = step_chain(DEEP)
    payload = expected_step_payload(DEEP)
    assert chain.cache_key == f"pickle__Step__{hashlib.sha1(payload.encode()).hexdigest()}"
    # Keys of the links below are right too, whichever order they are asked for in.
    assert chain.previous.previous.cache_key == step_chain(DEEP - 2).cache_key
    assert Serializer().dumps_task(chain) == payload


def test_a_deep_chain_serializes_and_deserializes() -> None:
    chain = wrapped_chain(DEEP)
    serialized = Serializer().serialize_task(chain)
    depth, inner = 0, serialized
    while inner["previous"]:
        inner, depth = inner["previous"]["inputs"][0], depth + 1
    assert depth == DEEP - 1 and inner == {
        "_is_task": True,
        "__class__": f"{__name__}.Wrapped",
        "_code_version": "v2",
        "n": 0,
        "previous": {},
    }
    assert Serializer().deserialize_task(serialized) == chain


def test_the_metadata_of_a_deep_chain_is_json_that_rebuilds_the_chain() -> None:
    chain = step_chain(DEEP)
    cache = PickleCache()
    meta = ResultMeta(None, None)
    text = cache.metadata_text(chain, meta)
    metadata = loads(text)
    assert metadata["cache_key"] == chain.cache_key
    assert Serializer().deserialize_task(metadata["task"]) == chain
    # The top levels are indented as labtech writes them; deeper ones stay on one line.
    assert '\n  "task": {\n    "_is_task": true,\n' in text and '\n    "n": 2999,\n' in text
    assert text.count("\n") < 200


def test_metadata_of_a_shallow_task_is_exactly_labtechs_layout() -> None:
    task = Wrapped(n=2, previous={"inputs": [Wrapped(n=1, previous={})]})
    cache = PickleCache()
    meta = ResultMeta(None, None)
    assert cache.metadata_text(task, meta) == json.dumps(cache.build_metadata(task, meta), indent=2)


def test_the_repr_of_a_deep_chain_is_dataclass_style() -> None:
    assert repr(step_chain(DEEP)) == expected_step_repr(DEEP)
    assert repr(wrapped_chain(3)) == (
        "Wrapped(n=2, previous=frozendict.frozendict({'inputs': (Wrapped(n=1, previous=frozendict.frozendict({'inputs': "
        "(Wrapped(n=0, previous=frozendict.frozendict({})),)})),)}))"
    )


def test_listing_the_entries_of_a_chain_rebuilds_each_link_once(tmp_path: Path) -> None:
    chain = step_chain(300)
    lab = labtech_nb.Lab(storage=tmp_path, runner_backend="serial")
    lab.run_tasks([chain], disable_progress=True, disable_top=True)
    listed = {task.n: task for task in lab.cached_tasks([Step])}
    assert sorted(listed) == list(range(300))
    assert listed[299] == chain
    assert all(listed[n].previous is listed[n - 1] for n in range(1, 300))


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("build", [step_chain, wrapped_chain], ids=["direct", "in a dict and a list"])
def test_a_chain_of_20000_tasks_pickles(dumps: Any, build: Any) -> None:
    chain = build(20_000)
    key = chain.cache_key
    rebuilt = pickle.loads(dumps(chain, protocol=5))
    assert rebuilt == chain
    assert rebuilt.cache_key == key
    assert rebuilt.n == 19_999
    # What travelled with the pickle (keys, JSON in pieces) is what the rebuilt chain would give afresh.
    assert FreshSerializer().dumps_task(rebuilt) == Serializer().dumps_task(rebuilt) == Serializer().dumps_task(chain)


def test_a_chain_made_cyclic_is_reported_wherever_it_is_walked() -> None:
    chain = step_chain(500)
    bottom = chain
    while bottom.previous is not None:
        bottom = bottom.previous
    object.__setattr__(bottom, "previous", chain)
    for use in (hash, lambda task: task.cache_key, lambda task: Serializer().serialize_task(task), pickle.dumps):
        with pytest.raises(LabError, match=r"^Cyclic dependency: Task '.*' depends on itself\.$"):
            use(chain)
    assert repr(chain).endswith("previous=...)" + ")" * 499)
