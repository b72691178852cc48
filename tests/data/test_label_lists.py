"""Multi-label cells: every accepted form, every refusal naming the file, row and column."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.errors import BadInputError
from engine.data.label_lists import (
    FROM_GIVEN,
    FROM_INDICES,
    FROM_NAMES,
    check_label_lists,
    parse_label_list,
    parse_label_lists,
)
from engine.data.labels import LabelError
from engine.data.table_files import read_table

CLASSES = ["bag", "coat", "shirt", "trouser"]


def _parse(cells, **options):
    options.setdefault("where", "/data/t.csv")
    options.setdefault("column", "labels")
    return parse_label_lists(cells, **options)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (["shirt", "bag"], ["shirt", "bag"]),
        (("bag",), ["bag"]),
        (np.array(["coat", "bag"], dtype=object), ["coat", "bag"]),
        ('["shirt", "bag"]', ["shirt", "bag"]),
        ("['shirt', 'bag']", ["shirt", "bag"]),  # pandas to_csv of a list column
        (' [ "shirt" ] ', ["shirt"]),
        ([" shirt ", "bag"], ["shirt", "bag"]),  # surrounding whitespace stripped
        ([3, 0], [3, 0]),
        ("[1, 2.0]", [1, 2]),
        ([], []),
        ("[]", []),
        (None, None),
        (float("nan"), None),
        ("", None),
        ("   ", None),
    ],
)
def test_cell_forms_accepted(cell, expected):
    assert parse_label_list(cell) == expected


def test_separator_only_when_given():
    assert parse_label_list("shirt|bag", separator="|") == ["shirt", "bag"]
    assert parse_label_list("t-shirt/top", separator="|") == ["t-shirt/top"]
    with pytest.raises(LabelError, match="plain string, not a list of labels"):
        parse_label_list("shirt|bag")
    with pytest.raises(LabelError, match="looks like a list"):
        parse_label_list('["shirt", "bag"]', separator="|")
    with pytest.raises(LabelError, match="blank label"):
        parse_label_list("shirt||bag", separator="|")


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        (3, "cell 3 is a number, not a list of labels"),
        (2.5, "is a number, not a list"),
        (True, "is a boolean"),
        (b"bag", "is bytes"),
        ({"a": 1}, "is a mapping"),
        ("bag", "plain string"),
        ('{"a": 1}', "plain string"),
        ("[shirt, bag", "does not parse as a list"),
        ("[shirt, bag]", "does not parse as a list"),
        (["bag", ["coat"]], "not a class name or index .a list of labels must be flat"),
        (["bag", None], "null label"),
        (["bag", " "], "blank label"),
        ([True], "is a boolean, not a class name"),
        ([-1], "negative"),
        ([1.5], "neither a class name nor a class index"),
        (["bag", 1], "mixes class names and class indices"),
        (["bag", "bag"], "'bag' appears more than once"),
        (["bag", " bag"], "'bag' appears more than once"),
        ('["bag", "coat", "bag"]', "'bag' appears more than once"),
    ],
)
def test_bad_cells_refused(cell, match):
    with pytest.raises(LabelError, match=match):
        parse_label_list(cell)


def test_multi_hot_with_sorted_names():
    lists = _parse([["shirt", "bag"], ["coat"], '["bag", "trouser"]'])
    assert lists.class_names == CLASSES
    assert lists.class_list_from == FROM_NAMES
    np.testing.assert_array_equal(lists.multi_hot, [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])
    assert lists.multi_hot.dtype == np.uint8
    np.testing.assert_array_equal(lists.labelled, [True, True, True])
    np.testing.assert_array_equal(lists.rows, [0, 1, 2])


def test_multi_hot_with_given_names_keeps_their_order():
    given = ["trouser", "shirt", "coat", "bag", "sandal"]
    lists = _parse([["shirt", "bag"], ["coat"]], class_names=given)
    assert lists.class_names == given and lists.class_list_from == FROM_GIVEN
    np.testing.assert_array_equal(lists.multi_hot, [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]])


def test_class_indices():
    lists = _parse([[0, 2], [1]])
    assert lists.class_names == ["0", "1", "2"] and lists.class_list_from == FROM_INDICES
    np.testing.assert_array_equal(lists.multi_hot, [[1, 0, 1], [0, 1, 0]])
    given = _parse([[0, 2], [1]], class_names=["a", "b", "c"])
    np.testing.assert_array_equal(given.multi_hot, [[1, 0, 1], [0, 1, 0]])
    with pytest.raises(BadInputError, match=r"row 1: column 'labels': cell .* breaks the column's"):
        _parse([[0, 2], ["bag"]])
    with pytest.raises(BadInputError, match=r"row 0: .*label index 3 is outside the class list"):
        _parse([[3]], class_names=["a", "b", "c"])


def test_empty_cell_where_labels_are_required_names_the_row():
    with pytest.raises(BadInputError) as info:
        _parse([["bag"], None, ["coat"]], keys=["a.png", "b.png", "c.png"])
    assert str(info.value) == (
        "/data/t.csv row 1 (id 'b.png'): column 'labels': empty cell where a list of "
        "labels is required"
    )


def test_empty_cell_is_unlabelled_when_labels_are_not_required():
    lists = _parse([["bag"], None, ""], required=False)
    np.testing.assert_array_equal(lists.labelled, [True, False, False])
    np.testing.assert_array_equal(lists.multi_hot, [[1], [0], [0]])


def test_empty_list_refused_unless_allowed():
    with pytest.raises(BadInputError, match=r"/data/t.csv row 1: column 'labels': empty list"):
        _parse([["bag"], []])
    lists = _parse([["bag"], "[]"], allow_empty=True)
    np.testing.assert_array_equal(lists.labelled, [True, True])
    np.testing.assert_array_equal(lists.multi_hot, [[1], [0]])


def test_unknown_label_lists_close_matches():
    with pytest.raises(BadInputError) as info:
        _parse([["bag"], ["shrit", "coat"]], class_names=CLASSES, keys=["k0", "k1"])
    message = str(info.value)
    assert message.startswith("/data/t.csv row 1 (id 'k1'): column 'labels': label 'shrit' is")
    assert "did you mean 'shirt'?" in message and "from data.class_names" in message


def test_non_list_cell_names_the_row():
    with pytest.raises(BadInputError, match=r"^/data/t.csv row 2: column 'labels': cell 7 is a"):
        _parse([["bag"], ["coat"], 7])
    with pytest.raises(BadInputError, match=r"^/data/t.csv row 0: .*'shirt' is a plain string"):
        _parse(["shirt"])


def test_repeated_label_refused_with_row():
    with pytest.raises(BadInputError, match=r"row 1: .*'coat' appears more than once"):
        _parse([["bag"], ["coat", "coat"]])


def test_skip_lists_bad_rows_and_keeps_the_rest():
    skipped = []
    lists = _parse(
        [["bag"], None, ["shrit"], 3, ["coat", "shirt"]],
        class_names=CLASSES,
        on_bad="skip",
        skipped=skipped,
    )
    np.testing.assert_array_equal(lists.rows, [0, 4])
    np.testing.assert_array_equal(lists.multi_hot, [[1, 0, 0, 0], [0, 1, 1, 0]])
    assert [row for row, _ in skipped] == [
        "/data/t.csv row 1",
        "/data/t.csv row 3",
        "/data/t.csv row 2",  # unknown labels are found once the class list is known
    ]


def test_bad_class_names_refused():
    with pytest.raises(BadInputError, match=r"data\.class_names: class names repeated: bag"):
        _parse([["bag"]], class_names=["bag", "coat", "bag"])
    with pytest.raises(BadInputError, match="non-blank"):
        _parse([["bag"]], class_names=["bag", " coat"])


def test_check_label_lists():
    check_label_lists(_parse([["bag"], ["coat", "bag"]]), where="/data/t.csv")
    with pytest.raises(BadInputError, match=r"has 1 class \(bag; from the sorted label names"):
        check_label_lists(_parse([["bag"], ["bag"]]), where="/data/t.csv")
    lists = _parse([["bag"], ["coat"]], class_names=CLASSES)
    with pytest.raises(
        BadInputError, match=r"classes shirt, trouser \(from data\.class_names\) are"
    ):
        check_label_lists(lists, where="/data/t.csv")


def test_cells_as_the_table_readers_give_them(tmp_path):
    """A Parquet list column, a CSV of JSON strings and a JSON-lines array parse alike."""
    rows = [["shirt", "bag"], ["coat"], ["trouser", "bag", "coat"]]
    expected = [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1]]
    pq.write_table(
        pa.table({"id": ["a", "b", "c"], "labels": pa.array(rows, pa.list_(pa.string()))}),
        tmp_path / "t.parquet",
    )
    csv = "id,labels\n" + "".join(
        f'{k},"{json.dumps(r).replace(chr(34), chr(34) * 2)}"\n'
        for k, r in zip("abc", rows, strict=True)
    )
    (tmp_path / "t.csv").write_text(csv)
    (tmp_path / "t.jsonl").write_text(
        "".join(json.dumps({"id": k, "labels": r}) + "\n" for k, r in zip("abc", rows, strict=True))
    )
    for name in ("t.parquet", "t.csv", "t.jsonl"):
        table = read_table(tmp_path / name)
        lists = _parse(
            table.column("labels").to_pylist(),
            where=str(tmp_path / name),
            keys=table.column("id").to_pylist(),
        )
        assert lists.class_names == CLASSES, name
        np.testing.assert_array_equal(lists.multi_hot, expected, err_msg=name)
