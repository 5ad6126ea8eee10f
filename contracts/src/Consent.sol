// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The slice of Registry that Consent reads.
interface IConsentRegistry {
    function isAdmin(address account) external view returns (bool);
    function isPatient(address account) external view returns (bool);
    function isDoctor(address account) external view returns (bool);
    function hospitalExists(uint64 id) external view returns (bool);
    function activeHospitalOf(address account) external view returns (uint64);
}

/// @dev The slice of Records that Consent reads (kind is Records.Kind as its uint8 value).
interface IConsentRecords {
    function recordMeta(bytes32 id) external view returns (address patient, uint8 kind);
}

/// @title medledger consent: grants, emergency declarations and the one access rule.
/// @notice `canAccess` is the rule the server checks before any decryption; `logAccess` records
///         every opening of a record, and `logViews` every view of a record's details or of a
///         patient's profile, as events signed by the reader. An emergency (break-glass) is
///         bounded: one open at a time per doctor and patient, a daily cap per doctor, and the
///         patient or an admin can end it.
contract Consent {
    enum Purpose {
        Treatment,
        Research
    }

    enum Scope {
        All,
        Kinds,
        Records
    }

    /// @dev Exactly one of `doctor` / `hospitalId` is set. `kindsMask` bit i stands for
    ///      Records.Kind i and is kept only for Scope.Kinds; `recordIds` only for Scope.Records.
    struct Grant {
        uint256 id;
        address patient;
        address doctor;
        uint64 hospitalId;
        Scope scope;
        uint8 kindsMask;
        bytes32[] recordIds;
        Purpose purpose;
        uint64 expiresAt;
        bool revoked;
    }

    error NotPatient(address account);
    error UnknownDoctor(address account);
    error UnknownHospital(uint64 id);
    error ExpiryInPast(uint64 expiresAt);
    error EmptyScope();
    error UnknownGrant(uint256 id);
    error NotGrantOwner(uint256 id);
    error AlreadyRevoked(uint256 id);
    error NotActiveDoctor(address account);
    error AccessDenied(address patient, address reader, bytes32 recordId);
    error UnknownRecord(bytes32 id);
    /// @notice A kinds mask with bits set beyond the known record kinds.
    error InvalidKindsMask(uint8 kindsMask);
    /// @notice An emergency declared without a reason hash.
    error ZeroHash();
    error ZeroAddress();
    error ZeroWindow();
    /// @notice The doctor already has an emergency open for this patient (no silent extension).
    error EmergencyOpen(address patient, address doctor, uint64 until);
    /// @notice The doctor has declared as many emergencies today (UTC) as the deployment allows.
    error EmergencyCapReached(address doctor, uint8 cap);
    error NoOpenEmergency(address patient, address doctor);
    /// @notice Only the patient, or an admin, may end an emergency.
    error NotPatientOrAdmin(address caller);
    error ZeroCap();
    /// @notice The reader may not see those parts of the patient's profile.
    error ProfileDenied(address patient, address reader);
    error LengthMismatch();

    event Granted(
        uint256 indexed id,
        address indexed patient,
        address indexed doctor,
        uint64 hospitalId,
        Purpose purpose,
        uint64 expiresAt
    );
    event Revoked(uint256 indexed id, address indexed patient);
    event EmergencyDeclared(
        address indexed patient, address indexed doctor, uint256 indexed id, bytes32 reasonHash, uint64 until
    );
    event EmergencyEnded(address indexed patient, address indexed doctor, uint256 indexed id, address endedBy);
    /// @notice A record's content was opened.
    event AccessLogged(
        address indexed patient, address indexed reader, bytes32 indexed recordId, Purpose purpose, bool emergency
    );
    /// @notice A record's details (title, notes, dates; a prescription's lines) were shown.
    event RecordViewed(
        address indexed patient, address indexed reader, bytes32 indexed recordId, Purpose purpose, bool emergency
    );
    /// @notice Parts of a patient's profile were shown: `fields` is PROFILE_IDENTITY and/or
    ///         PROFILE_CONTACT.
    event ProfileViewed(address indexed patient, address indexed reader, uint8 fields, bool emergency);

    /// @dev Records.Kind has three members: Report, Prescription, Other.
    uint8 private constant KNOWN_KINDS_MASK = 0x07;
    /// @notice Profile parts: name and date of birth; contact details.
    uint8 public constant PROFILE_IDENTITY = 1;
    uint8 public constant PROFILE_CONTACT = 2;

    struct Emergency {
        uint256 id;
        address patient;
        address doctor;
        bytes32 reasonHash;
        uint64 start;
        /// @dev When it ends (or ended: an early end sets it to that moment).
        uint64 until;
        /// @dev Who ended it early; zero if it ran its window.
        address endedBy;
    }

    IConsentRegistry private immutable _registry;
    IConsentRecords private immutable _records;
    uint64 public immutable emergencyWindow;
    uint8 public immutable maxEmergenciesPerDay;

    mapping(uint256 => Grant) private _grants;
    uint256 private _grantCount;
    mapping(address => uint256[]) private _grantsOf;
    /// @dev grant id => record id => listed, for Scope.Records lookups without a loop.
    mapping(uint256 => mapping(bytes32 => bool)) private _grantCovers;
    mapping(uint256 => Emergency) private _emergencies;
    uint256 private _emergencyCount;
    /// @dev patient => doctor => id of the latest emergency.
    mapping(address => mapping(address => uint256)) private _latestEmergency;
    /// @dev doctor => (UTC day number, declarations that day).
    mapping(address => uint64) private _capDay;
    mapping(address => uint8) private _declaredOnCapDay;

    constructor(address registry, address records, uint64 emergencyWindowSeconds, uint8 emergenciesPerDay) {
        if (registry == address(0) || records == address(0)) revert ZeroAddress();
        if (emergencyWindowSeconds == 0) revert ZeroWindow();
        if (emergenciesPerDay == 0) revert ZeroCap();
        _registry = IConsentRegistry(registry);
        _records = IConsentRecords(records);
        emergencyWindow = emergencyWindowSeconds;
        maxEmergenciesPerDay = emergenciesPerDay;
    }

    // ------------------------------------------------------------------ grants

    function grantDoctor(
        address doctor,
        Scope scope,
        uint8 kindsMask,
        bytes32[] calldata recordIds,
        Purpose purpose,
        uint64 expiresAt
    ) external returns (uint256 id) {
        _requirePatient(msg.sender);
        if (!_registry.isDoctor(doctor)) revert UnknownDoctor(doctor);
        return _createGrant(doctor, 0, scope, kindsMask, recordIds, purpose, expiresAt);
    }

    function grantHospital(
        uint64 hospitalId,
        Scope scope,
        uint8 kindsMask,
        bytes32[] calldata recordIds,
        Purpose purpose,
        uint64 expiresAt
    ) external returns (uint256 id) {
        _requirePatient(msg.sender);
        if (!_registry.hospitalExists(hospitalId)) revert UnknownHospital(hospitalId);
        return _createGrant(address(0), hospitalId, scope, kindsMask, recordIds, purpose, expiresAt);
    }

    function revoke(uint256 id) external {
        Grant storage g = _grantAt(id);
        if (g.patient != msg.sender) revert NotGrantOwner(id);
        if (g.revoked) revert AlreadyRevoked(id);
        g.revoked = true;
        emit Revoked(id, msg.sender);
    }

    // -------------------------------------------------------------- emergency

    /// @notice An active doctor opens break-glass access to a patient for `emergencyWindow`.
    ///         Refused while one is open for the same pair, and past the doctor's daily cap.
    function declareEmergency(address patient, bytes32 reasonHash) external returns (uint256 id) {
        if (_registry.activeHospitalOf(msg.sender) == 0) revert NotActiveDoctor(msg.sender);
        _requirePatient(patient);
        if (reasonHash == bytes32(0)) revert ZeroHash();
        uint64 now_ = uint64(block.timestamp);
        Emergency storage open = _emergencies[_latestEmergency[patient][msg.sender]];
        if (open.until > now_) revert EmergencyOpen(patient, msg.sender, open.until);
        uint64 day = now_ / 1 days;
        if (_capDay[msg.sender] != day) {
            _capDay[msg.sender] = day;
            _declaredOnCapDay[msg.sender] = 0;
        }
        if (_declaredOnCapDay[msg.sender] >= maxEmergenciesPerDay) {
            revert EmergencyCapReached(msg.sender, maxEmergenciesPerDay);
        }
        _declaredOnCapDay[msg.sender] += 1;
        id = ++_emergencyCount;
        uint64 until = now_ + emergencyWindow;
        _emergencies[id] = Emergency(id, patient, msg.sender, reasonHash, now_, until, address(0));
        _latestEmergency[patient][msg.sender] = id;
        emit EmergencyDeclared(patient, msg.sender, id, reasonHash, until);
    }

    /// @notice The patient, or an admin, ends the doctor's open emergency at once.
    function endEmergency(address patient, address doctor) external {
        if (msg.sender != patient && !_registry.isAdmin(msg.sender)) revert NotPatientOrAdmin(msg.sender);
        uint256 id = _latestEmergency[patient][doctor];
        Emergency storage e = _emergencies[id];
        if (id == 0 || e.until <= block.timestamp) revert NoOpenEmergency(patient, doctor);
        e.until = uint64(block.timestamp);
        e.endedBy = msg.sender;
        emit EmergencyEnded(patient, doctor, id, msg.sender);
    }

    /// @notice When the latest emergency of `doctor` for `patient` ends (or ended); 0 if none.
    function emergencyUntil(address patient, address doctor) external view returns (uint64) {
        return _emergencies[_latestEmergency[patient][doctor]].until;
    }

    function getEmergency(uint256 id) external view returns (Emergency memory) {
        if (id == 0 || id > _emergencyCount) revert NoOpenEmergency(address(0), address(0));
        return _emergencies[id];
    }

    function emergencyCount() external view returns (uint256) {
        return _emergencyCount;
    }

    // ------------------------------------------------------------ access rule

    /// @notice THE access rule. The record must exist and belong to `patient`; the patient may
    ///         always read; anyone else must be an active doctor at an active hospital holding an
    ///         unrevoked, unexpired grant of that purpose whose scope covers the record, or (for
    ///         Treatment only) have declared a still-running emergency for this patient.
    function canAccess(address patient, address reader, bytes32 recordId, Purpose purpose)
        external
        view
        returns (bool)
    {
        (bool allowed,) = _access(patient, reader, recordId, purpose);
        return allowed;
    }

    /// @notice Whether `doctor` may treat `patient` (e.g. anchor a prescription): an active doctor at
    ///         an active hospital with any unrevoked, unexpired Treatment grant from the patient
    ///         (directly or through the hospital, any scope), or a running emergency.
    function canTreat(address patient, address doctor) external view returns (bool) {
        uint64 hospitalId = _registry.activeHospitalOf(doctor);
        if (hospitalId == 0) return false;
        uint256[] storage ids = _grantsOf[patient];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            Grant storage g = _grants[ids[i]];
            if (_live(g, doctor, hospitalId, Purpose.Treatment)) return true;
        }
        return _emergencyOpen(patient, doctor);
    }

    /// @notice Records an opening of a record by the caller; reverts AccessDenied unless canAccess.
    function logAccess(address patient, bytes32 recordId, Purpose purpose) external {
        (bool allowed, bool emergency) = _access(patient, msg.sender, recordId, purpose);
        if (!allowed) revert AccessDenied(patient, msg.sender, recordId);
        emit AccessLogged(patient, msg.sender, recordId, purpose, emergency);
    }

    /// @notice Which parts of `patient`'s profile `reader` may see, and whether only through an
    ///         emergency. The patient sees all; a live Treatment grant covering more than single
    ///         records (or an open emergency) shows identity and contact; one covering single
    ///         records shows identity only; a Research grant shows nothing.
    function profileAccess(address patient, address reader) public view returns (uint8 fields, bool emergency) {
        if (reader == patient) return (PROFILE_IDENTITY | PROFILE_CONTACT, false);
        uint64 hospitalId = _registry.activeHospitalOf(reader);
        if (hospitalId == 0) return (0, false);
        uint256[] storage ids = _grantsOf[patient];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            Grant storage g = _grants[ids[i]];
            if (!_live(g, reader, hospitalId, Purpose.Treatment)) continue;
            if (g.scope != Scope.Records) return (PROFILE_IDENTITY | PROFILE_CONTACT, false);
            fields = PROFILE_IDENTITY;
        }
        if (fields == 0 && _emergencyOpen(patient, reader)) return (PROFILE_IDENTITY | PROFILE_CONTACT, true);
        return (fields, false);
    }

    /// @notice Records, in one transaction, what the caller is about to be shown: the details of
    ///         each record in `recordIds` (each must pass canAccess, the patient being its owner),
    ///         and the parts `profileFields[i]` of each patient `profiles[i]` (each must pass
    ///         profileAccess). Reverts, recording nothing, if any of it is not allowed.
    function logViews(
        bytes32[] calldata recordIds,
        address[] calldata profiles,
        uint8[] calldata profileFields,
        Purpose purpose
    ) external {
        if (profiles.length != profileFields.length) revert LengthMismatch();
        uint256 n = recordIds.length;
        for (uint256 i = 0; i < n; ++i) {
            bytes32 id = recordIds[i];
            (address patient,) = _records.recordMeta(id);
            (bool allowed, bool emergency) = _access(patient, msg.sender, id, purpose);
            if (!allowed) revert AccessDenied(patient, msg.sender, id);
            emit RecordViewed(patient, msg.sender, id, purpose, emergency);
        }
        n = profiles.length;
        for (uint256 i = 0; i < n; ++i) {
            address patient = profiles[i];
            uint8 asked = profileFields[i];
            (uint8 fields, bool emergency) = profileAccess(patient, msg.sender);
            if (asked == 0 || asked & fields != asked) revert ProfileDenied(patient, msg.sender);
            emit ProfileViewed(patient, msg.sender, asked, emergency);
        }
    }

    // ------------------------------------------------------------------- views

    function registryContract() external view returns (address) {
        return address(_registry);
    }

    function recordsContract() external view returns (address) {
        return address(_records);
    }

    function getGrant(uint256 id) external view returns (Grant memory) {
        return _grantAt(id);
    }

    function grantsOf(address patient) external view returns (uint256[] memory) {
        return _grantsOf[patient];
    }

    function grantCount() external view returns (uint256) {
        return _grantCount;
    }

    // ---------------------------------------------------------------- internal

    function _emergencyOpen(address patient, address doctor) private view returns (bool) {
        return _emergencies[_latestEmergency[patient][doctor]].until > block.timestamp;
    }

    function _requirePatient(address account) private view {
        if (!_registry.isPatient(account)) revert NotPatient(account);
    }

    function _grantAt(uint256 id) private view returns (Grant storage g) {
        if (id == 0 || id > _grantCount) revert UnknownGrant(id);
        g = _grants[id];
    }

    function _createGrant(
        address doctor,
        uint64 hospitalId,
        Scope scope,
        uint8 kindsMask,
        bytes32[] calldata recordIds,
        Purpose purpose,
        uint64 expiresAt
    ) private returns (uint256 id) {
        if (expiresAt <= block.timestamp) revert ExpiryInPast(expiresAt);
        id = ++_grantCount;
        Grant storage g = _grants[id];
        g.id = id;
        g.patient = msg.sender;
        g.doctor = doctor;
        g.hospitalId = hospitalId;
        g.scope = scope;
        g.purpose = purpose;
        g.expiresAt = expiresAt;
        if (scope == Scope.Kinds) {
            if (kindsMask & ~KNOWN_KINDS_MASK != 0) revert InvalidKindsMask(kindsMask);
            if (kindsMask == 0) revert EmptyScope();
            g.kindsMask = kindsMask;
        } else if (scope == Scope.Records) {
            uint256 n = recordIds.length;
            if (n == 0) revert EmptyScope();
            for (uint256 i = 0; i < n; ++i) {
                bytes32 recordId = recordIds[i];
                (address owner,) = _records.recordMeta(recordId);
                if (owner != msg.sender) revert UnknownRecord(recordId);
                _grantCovers[id][recordId] = true;
            }
            g.recordIds = recordIds;
        }
        _grantsOf[msg.sender].push(id);
        emit Granted(id, msg.sender, doctor, hospitalId, purpose, expiresAt);
    }

    /// @dev An unrevoked, unexpired grant of `purpose` naming `doctor` or its hospital.
    function _live(Grant storage g, address doctor, uint64 hospitalId, Purpose purpose)
        private
        view
        returns (bool)
    {
        if (g.revoked || g.expiresAt <= block.timestamp || g.purpose != purpose) return false;
        return g.doctor == doctor || (g.hospitalId != 0 && g.hospitalId == hospitalId);
    }

    /// @return allowed whether `reader` may open the record for `purpose`
    /// @return emergency true when access comes only through a declared emergency
    function _access(address patient, address reader, bytes32 recordId, Purpose purpose)
        private
        view
        returns (bool allowed, bool emergency)
    {
        (address owner, uint8 kind) = _records.recordMeta(recordId);
        if (owner == address(0) || owner != patient) return (false, false);
        if (reader == patient) return (true, false);
        uint64 hospitalId = _registry.activeHospitalOf(reader);
        if (hospitalId == 0) return (false, false);
        uint256[] storage ids = _grantsOf[patient];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = ids[i];
            Grant storage g = _grants[id];
            if (!_live(g, reader, hospitalId, purpose)) continue;
            Scope scope = g.scope;
            if (
                scope == Scope.All || (scope == Scope.Kinds && (g.kindsMask >> kind) & 1 == 1)
                    || (scope == Scope.Records && _grantCovers[id][recordId])
            ) return (true, false);
        }
        if (purpose == Purpose.Treatment && _emergencyOpen(patient, reader)) {
            return (true, true);
        }
        return (false, false);
    }
}
