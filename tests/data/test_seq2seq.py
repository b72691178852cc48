import numpy as np

from engine.data.seq2seq import TARGET_LEN, load_qasc_fusion, read_qasc_fusion


def test_bundled_corpus_and_tokenized_pairs():
    rows = read_qasc_fusion()
    assert len(rows) == 6500 and sum(len(r[2]) > 1 for r in rows) == 635
    d = load_qasc_fusion(limit=300, split_seed=2)
    # split by first fact: no first fact on both sides
    assert not set(d.group[d.split == "train"]) & set(d.group[d.split == "heldout"])
    # the decoder reads the start id then the target shifted right; nothing after the end
    assert (d.decoder_ids[:, 0] == d.start_id).all()
    m = d.target_mask
    np.testing.assert_array_equal(d.decoder_ids[:, 1:][m[:, 1:]], d.target_ids[:, :-1][m[:, 1:]])
    assert (d.decoder_ids[:, 1:][~m[:, 1:]] == 0).all()
    ends = m.sum(1) - 1
    assert (d.target_ids[np.arange(len(d)), ends] == d.end_id).all()
    assert m.shape[1] == TARGET_LEN and (m.sum(1) >= 2).all()
    # decoding the target gives the lower-cased words of the first reference
    assert d.decode(d.target_ids[0]) == "earthquakes can damage buildings ."
    again = load_qasc_fusion(limit=300, split_seed=2)
    np.testing.assert_array_equal(again.source_ids, d.source_ids)
