"""Invented names of villages, communities and people, and phone numbers (unique per county)."""
from __future__ import annotations

import numpy as np

_SURNAMES = list("沈徐陈王张朱姚吴钱杨金俞周孙李胡蒋费莫施潘邱方许唐宋郑马韩冯丁高严汪范叶顾董倪黄章鲍钟屠管戴卢邵闻褚")
_GIVEN = list("建国明华伟强军平林峰杰斌涛勇荣根福海东晓志永新春德兴文卫红芳英萍琴娟燕丽霞玲凤秀敏静婷雪慧佳宇浩鑫磊洁梅琳亮")
_VILLAGE_PREFIX = list("东西南北新前后上下大小长横高青白红黄金石沙竹桑梅荷柳莲凤龙永和兴丰安宝福太双三五庙城蠡勾洋芦茅")
_PLAIN_SUFFIX = list("桥塘湾港埭兜漾浜圩墩泾庄闸")
_HILL_SUFFIX = list("山溪坞岭坑岙岗源")
_COMMUNITY_NAMES = ["城东", "城西", "城南", "城北", "永安", "春晖", "英溪", "余英", "丰庆", "千秋", "龙山",
                    "凤栖", "梅林", "秋山", "塔山", "望湖", "府前", "新城", "文昌", "中兴"]


def _village_name(rng: np.random.Generator, hill: bool, used: set[str]) -> str:
    suffixes = _HILL_SUFFIX if hill and rng.random() < 0.7 else _PLAIN_SUFFIX
    while True:
        if rng.random() < 0.35:
            stem = _SURNAMES[_zipf_index(rng, len(_SURNAMES))] + "家"
        else:
            stem = _VILLAGE_PREFIX[int(rng.integers(len(_VILLAGE_PREFIX)))]
        name = stem + suffixes[int(rng.integers(len(suffixes)))] + "村"
        if name not in used:
            used.add(name)
            return name


def _community_name(rng: np.random.Generator, used: set[str]) -> str:
    free = [n for n in _COMMUNITY_NAMES if n + "社区" not in used]
    name = free[int(rng.integers(len(free)))] + "社区"
    used.add(name)
    return name


def _zipf_index(rng: np.random.Generator, n: int) -> int:
    w = 1.0 / np.arange(1, n + 1) ** 0.8
    return int(rng.choice(n, p=w / w.sum()))


def _person_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        given = "".join(_GIVEN[int(i)] for i in rng.integers(len(_GIVEN), size=2 if rng.random() < 0.75 else 1))
        name = _SURNAMES[_zipf_index(rng, len(_SURNAMES))] + given
        if name not in used:
            used.add(name)
            return name


def _phone(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        second = "3456789"[int(rng.choice(7, p=[0.3, 0.05, 0.04, 0.06, 0.15, 0.25, 0.15]))]
        phone = "1" + second + "".join(str(d) for d in rng.integers(10, size=9))
        if phone not in used:
            used.add(phone)
            return phone
