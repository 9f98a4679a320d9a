"""Reads of one statement compiled once for PostgreSQL's raw connections, each parameter sent
as it is (which reader each dialect's pool gets: ``test_engines``)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Integer, TypeDecorator, bindparam, select
from sqlalchemy.dialects import postgresql

from ieum_chat.store.couples import COUPLE_OF
from ieum_chat.store.messages import page_query
from ieum_chat.store.row_reads import Compiled
from ieum_chat.store.schema import couples, messages

DIALECT = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]


def test_a_page_is_sent_its_values_in_the_order_of_its_numbered_parameters() -> None:
    couple, viewer = uuid.uuid4(), uuid.uuid4()
    query = page_query(couple, before_seq=70, limit=51, viewer_id=viewer)
    compiled = Compiled(query.statement, DIALECT)
    assert compiled.names == ("couple_id", "viewer_id", "before_seq", "limit")
    for number in range(1, 5):
        assert f"${number}" in compiled.sql
    assert "$5" not in compiled.sql
    assert compiled.args(query.params) == [couple, viewer, 70, 51]


def test_a_value_written_into_the_statement_is_sent_without_being_passed() -> None:
    """COUPLE_OF ends in LIMIT 1, a parameter whose value the statement carries."""
    user = uuid.uuid4()
    compiled = Compiled(COUPLE_OF, DIALECT)
    args = compiled.args({"user_id": user})
    assert args.count(user) == compiled.names.count("user_id") >= 1
    assert args[compiled.names.index("param_1")] == 1
    with pytest.raises(KeyError):
        compiled.args({})  # user_id is needed


class _Doubled(TypeDecorator[int]):
    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: object) -> int | None:
        return None if value is None else value * 2


def test_a_parameter_the_driver_would_not_take_as_it_is_is_refused_where_compiled() -> None:
    """A type that converts its values, or a list expanded into the SQL, would need
    SQLAlchemy's processing on every call: refused once, when first compiled."""
    converted = select(couples.c.id).where(couples.c.last_seq == bindparam("n", type_=_Doubled))
    with pytest.raises(ValueError, match="'n' cannot be sent as it is"):
        Compiled(converted, DIALECT)
    expanded = select(messages.c.id).where(messages.c.seq.in_(bindparam("seqs", expanding=True)))
    with pytest.raises(ValueError, match="'seqs' cannot be sent as it is"):
        Compiled(expanded, DIALECT)
