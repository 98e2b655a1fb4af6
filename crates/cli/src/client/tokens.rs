//! The tokens operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Tokens;

use super::Remote;

impl Tokens for Remote {}
