"""Category classifier: the committed artefact, its inference path, and parity with training.

Speed is measured by ``bench/classify_bench.py``, not asserted here (the load-time check below
is a sanity bound, not a target). Tests that need the data set skip when it is absent.
"""

from __future__ import annotations

import json
import time
import zipfile

import numpy as np
import pytest

from services.router.classification import ARTEFACT_DIR, CategoryClassifier, Prediction
from services.router.classification.model import (
    ARRAYS_FILE,
    META_FILE,
    KeyIndex,
    normalise_plain,
    normalise_text,
    term_key,
)

# Handwritten, deliberately plain examples (not taken from the data set).
OBVIOUS = [
    ("城乡建设", "小区违章建筑无人管", "我们小区有业主在楼顶私自加盖违章建筑，物业和城管都不处理，希望住建部门尽快拆除。"),
    ("城乡建设", "老旧小区改造进度太慢", "我们小区列入老旧小区改造已经两年，房屋外墙和小区道路还没有动工，请问住建局什么时候施工？"),
    ("劳动和社会保障", "公司拖欠工资三个月", "我在一家工厂上班，老板已经拖欠我们工人三个月的工资，劳动合同也没签，请劳动监察部门帮忙讨薪。"),
    ("劳动和社会保障", "养老保险缴费年限怎么算", "我想咨询城镇职工养老保险的缴费年限，退休以后养老金怎么计算，社保局说法不一。"),
    ("教育文体", "学校违规组织有偿补课", "孩子所在的中学要求学生周末到校补课，每人收费八百元，老师还暗示不参加会影响成绩，请教育局查处。"),
    ("教育文体", "幼儿园学位紧张入学难", "今年孩子到了上小学的年龄，片区学校说学位不够，划片招生不透明，希望教育部门解决入学问题。"),
    ("卫生计生", "医院乱收费看病贵", "家人住院期间医院重复收取检查费，医生开了很多不必要的药，请卫健委调查这家医院的收费问题。"),
    ("卫生计生", "二孩生育登记办理难", "我们想办理生育服务登记，社区卫生服务中心和计生办互相推诿，生育证一直办不下来。"),
    ("环境保护", "化工厂夜间偷排废气", "附近的化工厂每天晚上排放刺鼻的废气，河里还有污水直排，空气污染严重，请环保局监测处理。"),
    ("环境保护", "搅拌站粉尘污染严重", "村旁边的搅拌站粉尘污染和噪音污染都很严重，环评手续也不全，希望环保部门依法查处。"),
    ("交通运输", "出租车拒载绕路", "晚上在火车站打出租车，司机拒载，还有的故意绕路多收费，请交通运输部门整顿出租车市场。"),
    ("交通运输", "乡村公路坑洼不平", "我们村通往镇上的公路路面坑洼，客运班车停运，希望交通局尽快修缮道路，恢复客运班线。"),
    ("商贸旅游", "景区门票乱涨价", "这个旅游景区门票突然涨价，还强制游客购买观光车票，导游带团强制购物，请旅游部门管一管。"),
    ("商贸旅游", "超市销售过期食品", "在一家超市买到过期的商品，商家拒绝退换，市场监管部门电话也打不通，请求维护消费者权益。"),
]


@pytest.fixture(scope="module")
def clf() -> CategoryClassifier:
    return CategoryClassifier.load()


def test_artefact_loads_with_expected_categories(clf: CategoryClassifier) -> None:
    assert set(clf.categories) == {"城乡建设", "劳动和社会保障", "教育文体", "商贸旅游", "卫生计生", "环境保护", "交通运输"}
    assert len(clf.version) == 16 and int(clf.version, 16) >= 0
    # the version is a content hash: loading again gives the same one
    assert CategoryClassifier.load().version == clf.version


def test_artefact_is_small_and_pickle_free() -> None:
    files = {META_FILE, ARRAYS_FILE}
    assert files <= {p.name for p in ARTEFACT_DIR.iterdir()}
    size = sum((ARTEFACT_DIR / f).stat().st_size for f in files)
    assert size < 8 * 1024 * 1024
    json.loads((ARTEFACT_DIR / META_FILE).read_text(encoding="utf-8"))
    with zipfile.ZipFile(ARTEFACT_DIR / ARRAYS_FILE) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    with np.load(ARTEFACT_DIR / ARRAYS_FILE, allow_pickle=False) as npz:
        for name in npz.files:
            arr = npz[name]  # raises if any array would need pickle
            assert arr.dtype != object and arr.dtype.kind in "if", name
            assert np.all(np.isfinite(arr)), name


def test_load_time_sanity() -> None:
    started = time.perf_counter()
    CategoryClassifier.load()
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("expected", "title", "content"), OBVIOUS, ids=[f"{e}-{t}" for e, t, _ in OBVIOUS])
def test_obvious_examples(clf: CategoryClassifier, expected: str, title: str, content: str) -> None:
    p = clf.predict([(title, content)])[0]
    assert p.category == expected, p.scores


def test_prediction_shape_and_confidence(clf: CategoryClassifier) -> None:
    items = [(t, c) for _, t, c in OBVIOUS] + [("", ""), ("只有标题", ""), ("", "只有内容"), ("ABC abc", "  \n\t ")]
    preds = clf.predict(items)
    assert len(preds) == len(items)
    for p in preds:
        assert isinstance(p, Prediction)
        assert p.category in clf.categories
        assert 0.0 <= p.confidence <= 1.0
        assert set(p.scores) == set(clf.categories)
        assert sum(p.scores.values()) == pytest.approx(1.0)
        assert p.confidence == max(p.scores.values())
        assert p.scores[p.category] == p.confidence
    assert clf.predict([]) == []
    with pytest.raises(AttributeError):
        preds[0].category = "x"  # type: ignore[misc]  # the test writes to a frozen dataclass on purpose


def test_predictions_are_deterministic_and_batch_independent(clf: CategoryClassifier) -> None:
    items = [(t, c) for _, t, c in OBVIOUS]
    a = clf.predict_proba(items)
    b = clf.predict_proba(items)
    assert np.array_equal(a, b)
    singles = np.vstack([clf.predict_proba([it]) for it in items])
    np.testing.assert_allclose(singles, a, rtol=0, atol=1e-12)
    reversed_ = clf.predict_proba(items[::-1])[::-1]
    np.testing.assert_allclose(reversed_, a, rtol=0, atol=1e-12)


def test_text_normalisation_and_keys() -> None:
    assert normalise_plain("AB  c\n\n d") == "ab c d"
    assert normalise_plain(None) == ""
    assert normalise_text("A3区2019年12月  收费300元") == "a0区0年0月 收费0元"
    ids = {"a": 1, "b": 2, "中": 3}
    assert term_key("a", ids) == 1 << 60 | 1 << 45
    assert term_key("ab", ids) != term_key("ba", ids)
    assert len({term_key(t, ids) for t in ("a", "ab", "aba", "abab", "中", "中a")}) == 6
    with pytest.raises(ValueError):
        term_key("ababa", ids)
    with pytest.raises(KeyError):
        term_key("ax", ids)


@pytest.mark.parametrize("item", [("", ""), ("）", ""), ("a", ""), ("", "b"), ("一", "二")])
def test_a_lone_very_short_text_is_classified(clf: CategoryClassifier, item: tuple[str, str]) -> None:
    # a batch whose texts are all shorter than a view's shortest n-gram has no terms at all
    (p,) = clf.predict([item])
    assert p.category in clf.categories and 0.0 < p.confidence <= 1.0


@pytest.mark.parametrize("n_keys", [0, 1, 7, 5000])
def test_key_index_finds_exactly_the_vocabulary_terms(n_keys: int) -> None:
    rng = np.random.default_rng(n_keys)
    chars = rng.integers(0, 0x20000, n_keys // 3)
    pairs = rng.integers(1 << 21, 1 << 42, n_keys - len(chars))
    keys = np.unique(np.concatenate([chars, pairs]).astype(np.int64))
    index = KeyIndex(keys)
    queries = np.concatenate([
        keys, keys[::-1],  # every key, twice, in two orders
        rng.integers(0, 1 << 42, 4000), rng.integers(0, 0x30000, 4000),  # mostly absent
        np.array([0, (1 << 21) - 1, 1 << 21, (1 << 42) + 5], dtype=np.int64),
    ]).astype(np.int64)
    found = index.lookup(queries)
    where = np.searchsorted(keys, queries)
    inside = where < len(keys)
    expected = np.full(len(queries), -1)
    match = inside.copy()
    match[inside] = keys[where[inside]] == queries[inside]
    expected[match] = where[match]
    np.testing.assert_array_equal(found, expected)
    assert index.lookup(np.zeros(0, dtype=np.int64)).shape == (0,)
