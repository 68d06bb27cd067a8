"""Pure transparency-log math and formats: RFC 6962/9162 Merkle trees, C2SP
tiles, checkpoints, signed notes and cosignatures. No I/O, no clock, no database."""
