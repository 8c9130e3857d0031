//! Schema migrations: what a database made by an older build lacks, added at open. `schema.sql`
//! creates a new database whole; `CREATE TABLE IF NOT EXISTS` leaves an existing table as it is,
//! so a column added later is added here too.

use super::StoreError;
use rusqlite::Connection;

/// Columns added after the first release, added to a database made before them: `CREATE TABLE
/// IF NOT EXISTS` leaves an existing table as it is.
const ADDED_COLUMNS: [(&str, &str, &str); 1] = [(
    "orders",
    "expected_price_age_us",
    "INTEGER CHECK (expected_price_age_us IS NULL OR expected_price_age_us >= 0)",
)];

/// Adds every column of [`ADDED_COLUMNS`] the database lacks.
pub(super) fn add_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, declaration) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
        }
    }
    Ok(())
}
