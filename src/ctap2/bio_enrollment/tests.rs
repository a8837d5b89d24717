//! authenticatorBioEnrollment through the authenticator.
