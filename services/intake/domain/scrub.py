"""Anonymising a case's text for the public board (晒单) and its open data. Pure.

Stricter than :mod:`services.intake.domain.masking` (which keeps a number's first and last
digits for staff who may need to tell two numbers apart): what the public reads keeps nothing
of a personal detail.

* **numbers**: every run of six or more digits (ASCII or full-width, spaces and hyphens
  between groups allowed: phone numbers, ID numbers, QQ and bank numbers) becomes ``*``, ID
  numbers with their final X; e-mail addresses become ``***@***``;
* **house numbers**: a number before 号楼 / 栋 / 幢 / 单元 / 室 / 户 / 层 / 号 / 弄 becomes ``*``
  (the street and the community stay: they are where the problem is);
* **names**: the petitioner's own name wherever it appears (``known``: intake holds it);
  a name after the words that introduce one (我叫, 我是, 本人, 姓名, 联系人, 业主, 户主, 家属,
  签名 …), a name before a form of address (先生, 女士, 老师, 师傅, 阿姨 …), each a common
  family name followed by one or two characters, becomes ``某某`` (``王先生`` → ``某先生``).

No scrubber catches every name a citizen may type; these rules catch the ways names are
written in petitions, and the board shows only resolved cases, which a department has
answered and may withhold (``public: false``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["scrub"]

#: the commonest family names (together well over 80 % of the population), single and double
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施"
    "文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷"
    "盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷"
    "晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_DOUBLE = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
           "夏侯", "令狐")
_SURNAME = "(?:" + "|".join(_DOUBLE) + f"|[{_SURNAMES}])"
_GIVEN = "[\u4e00-\u9fff]{1,2}"
_CUES = ("我叫|我是|本人|姓名[:：]?|联系人[:：]?|业主|户主|家属|签名[:：]?|署名[:：]?|反映人[:：]?|来电人[:：]?"
         "|当事人[:：]?")
_TITLES = "先生|女士|小姐|老师|师傅|阿姨|大爷|大妈|大娘|大叔|老人|同志|老板|经理"
_CUED = re.compile(rf"({_CUES})\s*{_SURNAME}{_GIVEN}")
_TITLED = re.compile(rf"{_SURNAME}({_TITLES})")
_D = "[0-9０-９]"
_LONG_NUMBER = re.compile(rf"(?<![0-9０-９])(?:{_D}[ \-－]?){{5,}}{_D}[XxＸｘ]?(?![0-9０-９])")
_HOUSE = re.compile(rf"{_D}+(?=(?:号楼|栋|幢|单元|室|户|层|号|弄))")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def scrub(text: str, known: Iterable[str | None] = ()) -> str:
    """`text` anonymised for the public (see the module doc); `known`: names to remove wherever
    they appear (the petitioner's own)."""
    if not text:
        return text
    for name in sorted({n.strip() for n in known if n and len(n.strip()) >= 2}, key=len, reverse=True):
        text = text.replace(name, "某某")
    text = _EMAIL.sub("***@***", text)
    text = _LONG_NUMBER.sub(lambda m: "*" * len(m.group(0)), text)
    text = _HOUSE.sub(lambda m: "*" * len(m.group(0)), text)
    text = _CUED.sub(lambda m: m.group(1) + "某某", text)
    return _TITLED.sub(lambda m: "某" + m.group(1), text)
