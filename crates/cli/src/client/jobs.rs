//! The jobs operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Jobs;

use super::Remote;

impl Jobs for Remote {}
