"""Test documents for the chunkers (our own text; the cases follow Elasticsearch's chunker tests)."""

from __future__ import annotations

import re

# Four sentences of plain prose: no hyphens, no symbols, so ICU's words are the whitespace-separated ones.
PROSE = (
    "Rivers carry water from high ground to the sea and shape the land they cross over many thousands of years.\n"
    "A young river in the mountains runs fast and straight, cutting a narrow valley with steep sides. An old "
    "river on the plain moves slowly and bends from side to side in wide loops that the people who live nearby "
    "have always called meanders, after a winding river in the west of Turkey that the ancient Greeks knew well. "
    "Where a river meets the sea it often drops the sand and mud it has carried for hundreds of miles. Over "
    "time this builds a delta, a flat and fertile piece of land that farmers have valued since the first towns "
    "were built along the Nile, the Tigris and the Euphrates, and that is still home to many millions of people "
    "today. Floods bring fresh soil every year, but they also bring danger, so people have built banks and dams "
    "to hold the water back."
)

MULTILINGUAL = (
    # Croatian
    "Rijeka teče kroz grad već stoljećima, a ljudi su na njezinim obalama gradili kuće, mlinove i mostove. "
    "Zimi se voda ponekad zaledi, pa djeca kližu po ledu dok odrasli gledaju s obale.",
    # Japanese
    "川は山から海へ水を運びます。昔から人々は川のそばに町を作り、田んぼに水を引いてきました。"
    "大きな川には多くの橋がかかっています。",
    # Thai
    "แม่น้ำเจ้าพระยาไหลผ่านกรุงเทพมหานครและเป็นเส้นทางคมนาคมที่สำคัญมาตั้งแต่สมัยโบราณ ผู้คนใช้เรือขนส่งสินค้าและเดินทางไปมาระหว่างเมืองต่างๆ",
    # Arabic
    "يجري النهر من الجبال إلى البحر ويحمل معه الطمي الذي يجعل الأرض خصبة. "
    "وقد بنى الناس القرى على ضفافه منذ آلاف السنين.",
)


def whitespace_sentence_sizes(text: str) -> list[int]:
    """Words per sentence, counted by splitting on whitespace (sentences end with a full stop)."""
    return [len(sentence.split()) for sentence in re.split(r"\.\s+", text)]


def numbered_words(count: int) -> str:
    """`0 1 2 ... count-1 ` (every word followed by a space)."""
    return "".join(f"{i} " for i in range(count))
