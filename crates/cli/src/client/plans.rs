//! The plans operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Plans;

use super::Remote;

impl Plans for Remote {}
