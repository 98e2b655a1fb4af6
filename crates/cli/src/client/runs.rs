//! The runs operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Runs;

use super::Remote;

impl Runs for Remote {}
