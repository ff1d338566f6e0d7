//! The device code grant at the token endpoint (RFC 8628 §3.4, §3.5): the
//! device polls until the person decides; tokens come exactly once.

use async_trait::async_trait;

use crate::crypto::SecretDigest;
use crate::device::poll_error;
use crate::error::{Error, Reason};
use crate::grants::{Grant, GrantRequest, Targets};
use crate::model::GrantType;
use crate::provider::Provider;
use crate::store::DevicePoll;
use crate::tokens::Issue;

#[derive(Debug)]
pub struct DeviceCodeGrant;

#[async_trait]
impl Grant for DeviceCodeGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::DeviceCode
    }

    fn parameters(&self) -> &'static [&'static str] {
        &["device_code"]
    }

    async fn exchange(
        &self,
        provider: &Provider,
        request: &GrantRequest<'_>,
    ) -> Result<Issue, Error> {
        let client = request.client()?;
        let device_code = request.params.require("device_code")?;
        let now = provider.clock().now();
        let device = match provider
            .store()
            .poll_device(&SecretDigest::of(device_code), &client.id, now)
            .await?
        {
            DevicePoll::Polled(device) => device,
            DevicePoll::SlowDown => {
                return Err(Error::new(
                    Reason::DeviceSlowDown,
                    "polling too fast: wait 5 seconds more between requests",
                ));
            }
            DevicePoll::Invalid => {
                return Err(Error::new(
                    Reason::DeviceCodeUnknown,
                    "unknown device code, or issued to another client",
                ));
            }
        };
        if device.client_id != client.id {
            return Err(Error::new(
                Reason::DeviceCodeOfAnotherClient,
                "the device code was issued to another client",
            ));
        }
        if let Some(error) = poll_error(&device, now) {
            return Err(error);
        }
        let (Some(user_id), Some(auth_time)) = (&device.user_id, device.auth_time) else {
            return Err(Error::server_error(&"approved device code without a user"));
        };
        let user = provider
            .store()
            .user(user_id)
            .await?
            .ok_or_else(|| Error::new(Reason::UserGone, "the user no longer exists"))?;
        let targets = Targets::resolve(provider, client, &device.audiences).await?;
        Ok(Issue::user(user, device.scope.clone(), targets, auth_time))
    }
}
