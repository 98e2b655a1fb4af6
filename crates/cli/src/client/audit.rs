//! The audit operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Audit;

use super::Remote;

impl Audit for Remote {}
