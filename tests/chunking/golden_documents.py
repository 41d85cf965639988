"""Documents for the golden offsets (our own text)."""

CODE = '''def merge(left, right):
    """Merge two sorted lists into one sorted list."""
    result = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            result.append(left[i]); i += 1
        else:
            result.append(right[j]); j += 1

    result.extend(left[i:])
    result.extend(right[j:])
    return result


class Queue:
    def __init__(self):
        self.items = []  # oldest first
'''

THAI = (
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย มีประชากรมากกว่าสิบล้านคน "
    "แม่น้ำเจ้าพระยาไหลผ่านใจกลางเมือง ผู้คนเดินทางด้วยเรือ รถไฟฟ้า และรถประจำทาง "
    "อาหารริมทางของกรุงเทพมีชื่อเสียงไปทั่วโลก"
)

LONG_SENTENCE = (
    "The committee met on a grey morning in the old library to discuss the budget, the roof that had leaked "
    "all winter, the shelves that sagged under the weight of forgotten encyclopaedias, the heating that worked "
    "only on the second floor, the cat that nobody owned but everybody fed, the garden that the volunteers had "
    "planted with herbs and vegetables, and the question of whether the building should stay open on Sundays "
    "when so few people came and the cost of keeping the lights on kept rising every single month"
)

MARKDOWN = """# Field notes

Weather was clear and cold; the wind came from the north all day.

## Birds

We counted twelve species near the lake, including a heron that stood still for an hour.
Two swans flew over at noon.

Sightings
---------
- heron (1)
- swan (2)
- coot (many)

## Plants

Reeds were brown and dry. Some willows had early buds.
"""

MIXED = (
    "Emoji 😀 and flags 🇫🇷 sit in text.\r\nCRLF lines end here.\r\n"
    "東京は晴れ。明日は雨です。Mixed words: naïve café, Straße, мир, نهر.\r\n"
    "👩‍👩‍👧 family, 𝒜𝓁𝓅𝒽𝒶 letters, and numbers 3.14 and 1,000."
)
