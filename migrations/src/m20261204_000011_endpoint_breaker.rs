//! An endpoint's own circuit-breaker settings. The ratio is kept in
//! thousandths, an integer like every other column of the table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    BreakerFailureThreshold,
    BreakerFailurePermille,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite adds one at a time.
        for column in [
            Endpoints::BreakerFailureThreshold,
            Endpoints::BreakerFailurePermille,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Endpoints::Table)
                        .add_column(ColumnDef::new(column).integer().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Endpoints::BreakerFailurePermille,
            Endpoints::BreakerFailureThreshold,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Endpoints::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
