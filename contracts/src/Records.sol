// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The slice of Registry that Records reads.
interface IRecordsRegistry {
    function isAdmin(address account) external view returns (bool);
    function isPatient(address account) external view returns (bool);
    function isActiveDoctor(address account) external view returns (bool);
}

/// @dev The slice of Consent that Records reads.
interface IRecordsConsent {
    function canTreat(address patient, address doctor) external view returns (bool);
}

/// @title medledger record anchors: which record exists, whose it is, who wrote it, and the hash
///        of its encrypted body.
/// @notice Only anchors live here. The record body and its metadata stay encrypted off chain; the
///         content hash is the hash of the stored ciphertext, so it reveals nothing clinical.
contract Records {
    enum Kind {
        Report,
        Prescription,
        Other
    }

    struct Anchor {
        bytes32 id;
        address patient;
        address author;
        Kind kind;
        bytes32 contentHash;
        uint64 time;
    }

    error NotPatient(address account);
    error RecordExists(bytes32 id);
    error UnknownRecord(bytes32 id);
    error ZeroHash();
    error InvalidKind();
    error NoTreatmentAccess(address patient, address doctor);
    error NotActiveDoctor(address account);
    error ConsentAlreadySet();
    error ConsentNotSet();
    error NotAdmin(address caller);
    error ZeroAddress();

    event ConsentSet(address indexed consent);
    event RecordAnchored(
        bytes32 indexed id, address indexed patient, address indexed author, Kind kind, bytes32 contentHash
    );

    IRecordsRegistry private immutable _registry;
    /// @dev The Consent contract, set once after it is deployed (it needs this contract's address).
    IRecordsConsent private _consent;

    mapping(bytes32 => Anchor) private _records;
    mapping(address => bytes32[]) private _byPatient;

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IRecordsRegistry(registry);
    }

    /// @notice Wires in the Consent contract; once, by a registry admin.
    function setConsent(address consent) external {
        if (!_registry.isAdmin(msg.sender)) revert NotAdmin(msg.sender);
        if (address(_consent) != address(0)) revert ConsentAlreadySet();
        if (consent == address(0)) revert ZeroAddress();
        _consent = IRecordsConsent(consent);
        emit ConsentSet(consent);
    }

    /// @notice A patient anchors one of their own records (a report or another document).
    function anchorRecord(bytes32 id, Kind kind, bytes32 contentHash) external {
        if (!_registry.isPatient(msg.sender)) revert NotPatient(msg.sender);
        if (kind == Kind.Prescription) revert InvalidKind();
        _anchor(id, msg.sender, kind, contentHash);
    }

    /// @notice An active doctor with a treatment grant (or a declared emergency) anchors a
    ///         prescription for the patient.
    function anchorPrescription(bytes32 id, address patient, bytes32 contentHash) external {
        if (!_registry.isActiveDoctor(msg.sender)) revert NotActiveDoctor(msg.sender);
        if (!_registry.isPatient(patient)) revert NotPatient(patient);
        IRecordsConsent c = _consent;
        if (address(c) == address(0)) revert ConsentNotSet();
        if (!c.canTreat(patient, msg.sender)) revert NoTreatmentAccess(patient, msg.sender);
        _anchor(id, patient, Kind.Prescription, contentHash);
    }

    // ------------------------------------------------------------------- views

    function registryContract() external view returns (address) {
        return address(_registry);
    }

    /// @notice The Consent contract, or the zero address before setConsent.
    function consentContract() external view returns (address) {
        return address(_consent);
    }

    function getRecord(bytes32 id) external view returns (Anchor memory) {
        Anchor storage a = _records[id];
        if (a.patient == address(0)) revert UnknownRecord(id);
        return a;
    }

    function exists(bytes32 id) external view returns (bool) {
        return _records[id].patient != address(0);
    }

    /// @notice Owner and kind of a record in one cheap call; patient is the zero address when the
    ///         record does not exist.
    function recordMeta(bytes32 id) external view returns (address patient, Kind kind) {
        Anchor storage a = _records[id];
        return (a.patient, a.kind);
    }

    function recordCount(address patient) external view returns (uint256) {
        return _byPatient[patient].length;
    }

    function recordsOf(address patient) external view returns (bytes32[] memory) {
        return _byPatient[patient];
    }

    // ---------------------------------------------------------------- internal

    function _anchor(bytes32 id, address patient, Kind kind, bytes32 contentHash) private {
        if (id == bytes32(0) || contentHash == bytes32(0)) revert ZeroHash();
        Anchor storage a = _records[id];
        if (a.patient != address(0)) revert RecordExists(id);
        a.id = id;
        a.patient = patient;
        a.author = msg.sender;
        a.kind = kind;
        a.contentHash = contentHash;
        a.time = uint64(block.timestamp);
        _byPatient[patient].push(id);
        emit RecordAnchored(id, patient, msg.sender, kind, contentHash);
    }
}
