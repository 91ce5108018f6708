"""first_per_group: rank order, one per group, lazy."""

from unimo_kit.utils import first_per_group


def test_first_per_group_keeps_rank_order_and_one_per_group():
    hits = [("img1", 0.9), ("img1", 0.8), ("img2", 0.7), ("img3", 0.6), ("img2", 0.5)]
    assert first_per_group(hits, 2, group=lambda h: h[0]) == [("img1", 0.9), ("img2", 0.7)]
    assert first_per_group(hits, 10, group=lambda h: h[0]) == hits[0:1] + hits[2:4]
    assert first_per_group(hits, 2) == hits[:2]
    assert first_per_group(hits, 0) == []


def test_first_per_group_reads_no_further_than_needed():
    read = []

    def items():
        for i in range(100):
            read.append(i)
            yield i

    assert first_per_group(items(), 3, group=lambda i: i // 2) == [0, 2, 4]
    assert read == [0, 1, 2, 3, 4]
