"""The embedded durable log: Kafka's model (topics, partitions, offsets, groups), no server.

A :class:`Log` is a folder of topics. A topic has partitions; each partition is an
append-only sequence of rows with consecutive offsets, stored in segment files of
CRC-checked batches. Rows are appended as :class:`Record` lists or as whole Arrow tables
(stored columnar, read back zero-copy). Several processes may append to and read the same
topic at once; consumer groups keep their positions in the folder too.

>>> import tempfile
>>> import pyarrow as pa
>>> import tidal.log
>>> log = tidal.log.open(tempfile.mkdtemp())
>>> orders = log.create_topic("orders", partitions=4, fsync="batch")
>>> result = orders.append_batch(
...     pa.table({"user": ["ann", "max", "ann"], "amount": [5, 7, 9]}), key="user"
... )
>>> result.count, result.durable
(3, True)
>>> p = orders.partition_for(b"ann")
>>> orders.append([tidal.log.Record(b"refund", key=b"ann")]).offsets[p]
OffsetRange(first=2, last=2)
>>> table, next_offset = orders.read_arrow(p, 0)
>>> table.column("amount").to_pylist(), next_offset
([5, 9], 2)
>>> [r.value for r in orders.read(p, next_offset)]
[b'refund']
>>> log.commit("billing", "orders", {0: 1})
>>> log.committed("billing", "orders")
{0: 1}
>>> log.close()
"""

from ._consumer import Consumer
from ._errors import (
    CorruptRecordError,
    InvalidNameError,
    LogError,
    OffsetOutOfRangeError,
    TopicExistsError,
    UnknownTopicError,
)
from ._log import Log, open
from ._partitioner import murmur2
from ._record import (
    AppendResult,
    ArrowRead,
    GroupDescription,
    OffsetRange,
    PartitionDescription,
    Record,
    TopicDescription,
)
from ._settings import NAME_RULE, TopicSettings
from ._topic import Topic

__all__ = [
    "NAME_RULE",
    "AppendResult",
    "ArrowRead",
    "Consumer",
    "CorruptRecordError",
    "GroupDescription",
    "InvalidNameError",
    "Log",
    "LogError",
    "OffsetOutOfRangeError",
    "OffsetRange",
    "PartitionDescription",
    "Record",
    "Topic",
    "TopicDescription",
    "TopicExistsError",
    "TopicSettings",
    "UnknownTopicError",
    "murmur2",
    "open",
]
