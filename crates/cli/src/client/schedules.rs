//! The schedules operations of [`rota_ops::Rota`] over `/api/v1`.

use rota_ops::service::Schedules;

use super::Remote;

impl Schedules for Remote {}
