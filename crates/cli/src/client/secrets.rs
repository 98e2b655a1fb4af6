//! The secrets operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Secrets;

use super::Remote;

impl Secrets for Remote {}
